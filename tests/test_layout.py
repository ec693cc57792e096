"""The competition's file names and dataset folder layout."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from carvana import layout

CAR = "0cdf5b5d0ce1"  # 12 lowercase hex characters, as in the competition


@pytest.mark.parametrize(
    ("view", "name"), [(1, f"{CAR}_01.jpg"), (9, f"{CAR}_09.jpg"), (16, f"{CAR}_16.jpg")]
)
def test_image_name_pads_the_view_to_two_digits(view: int, name: str) -> None:
    assert layout.image_name(CAR, view) == name


@pytest.mark.parametrize("view", [1, 7, 16])
def test_names_round_trip(view: int) -> None:
    img = layout.image_name(CAR, view)
    mask = layout.mask_name(img)
    assert mask == f"{CAR}_{view:02d}_mask.gif"
    assert layout.parse_image_name(img) == (CAR, view)
    assert layout.parse_mask_name(mask) == (CAR, view)
    assert layout.car_of(img) == CAR


@pytest.mark.parametrize("view", [0, 17])
def test_image_name_rejects_a_view_outside_1_to_16(view: int) -> None:
    with pytest.raises(ValueError, match=f"view must be in 1..16, got {view}"):
        layout.image_name(CAR, view)


IMAGE_FORM = re.escape("is not an image name of the form <carid>_<NN>.jpg")
MASK_FORM = re.escape("is not a mask name of the form <carid>_<NN>_mask.gif")


@pytest.mark.parametrize(
    "name",
    [
        f"{CAR.upper()}_01.jpg",  # uppercase hex
        f"{CAR[:11]}_01.jpg",  # 11 characters
        f"{CAR}0_01.jpg",  # 13 characters
        f"{CAR[:11]}g_01.jpg",  # 'g' is not hex
        f"{CAR}_00.jpg",  # view 00
        f"{CAR}_17.jpg",  # view 17
        f"{CAR}_1.jpg",  # one digit
        f"{CAR}_01.png",
        f"{CAR}_01_mask.gif",  # a mask name is not an image name
    ],
)
def test_parse_image_name_rejects_other_names(name: str) -> None:
    with pytest.raises(ValueError, match=IMAGE_FORM):
        layout.parse_image_name(name)
    with pytest.raises(ValueError, match=IMAGE_FORM):
        layout.mask_name(name)


@pytest.mark.parametrize(
    "name",
    [
        f"{CAR.upper()}_01_mask.gif",  # uppercase hex
        f"{CAR[:11]}_01_mask.gif",  # 11 characters
        f"{CAR}_00_mask.gif",  # view 00
        f"{CAR}_17_mask.gif",  # view 17
        f"{CAR}_01_mask.png",
        f"{CAR}_01.gif",  # missing _mask
        f"{CAR}_01.jpg",  # an image name is not a mask name
    ],
)
def test_parse_mask_name_rejects_other_names(name: str) -> None:
    with pytest.raises(ValueError, match=MASK_FORM):
        layout.parse_mask_name(name)


def test_the_rejection_message_names_the_name_and_the_expected_form() -> None:
    with pytest.raises(ValueError) as caught:
        layout.parse_image_name(f"{CAR}_17.jpg")
    message = str(caught.value)
    assert repr(f"{CAR}_17.jpg") in message
    assert "12 lowercase hex characters" in message
    assert "01..16" in message


@pytest.mark.parametrize(
    ("parse", "name"),
    [(layout.parse_image_name, f"{CAR}_01.jpg\n"), (layout.parse_mask_name, f"{CAR}_01_mask.gif\n")],
    ids=["image", "mask"],
)
def test_a_trailing_newline_is_rejected(parse: Callable[[str], tuple[str, int]], name: str) -> None:
    with pytest.raises(ValueError, match="is not a"):
        parse(name)


def test_dataset_paths(tmp_path: Path) -> None:
    paths = layout.DatasetPaths(tmp_path)
    img = layout.image_name(CAR, 3)
    assert paths.train_dir == tmp_path / "train"
    assert paths.train_masks_dir == tmp_path / "train_masks"
    assert paths.test_dir == tmp_path / "test"
    assert paths.train_masks_csv_path == tmp_path / "train_masks.csv"
    assert paths.metadata_path == tmp_path / "metadata.csv"
    assert paths.sample_submission_path == tmp_path / "sample_submission.csv"
    assert paths.image_path("train", img) == tmp_path / "train" / f"{CAR}_03.jpg"
    assert paths.image_path("test", img) == tmp_path / "test" / f"{CAR}_03.jpg"
    assert paths.mask_path(img) == tmp_path / "train_masks" / f"{CAR}_03_mask.gif"


def test_dataset_paths_rejects_an_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        layout.DatasetPaths(tmp_path).image_path("val", layout.image_name(CAR, 1))


def test_scaled_size_is_height_width_of_the_competition_images():
    assert layout.scaled_size(0.125) == (160, 240)
    assert layout.scaled_size(1.0) == (1280, 1918)
    assert layout.scaled_size(0.5) == (640, 959)


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5])
def test_scaled_size_rejects_scales_outside_0_1(scale):
    with pytest.raises(ValueError, match=r"image_scale must be in \(0, 1\]"):
        layout.scaled_size(scale)
