"""Dataset validation: the clean dataset passes; each corruption is named with its file and problem."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from carvana.cli import main
from carvana.data.images import read_mask, write_mask
from carvana.data.validate import DataValidationError, ValidationSpec, validate
from carvana.layout import DatasetPaths

SIZE = (64, 96)  # (height, width) of the tiny dataset


def _validate(data_dir: Path, **kwargs) -> dict:
    return validate(DatasetPaths(data_dir), ValidationSpec(image_size=SIZE, **kwargs))


def _problem(path: Path, problem: str) -> str:
    """A regex for one line of the error: ``<path>: <problem>``."""
    return re.escape(f"{path}: {problem}")


def _first_train_image(paths: DatasetPaths) -> str:
    return sorted(entry.name for entry in paths.train_dir.iterdir())[0]


def _first_test_image(paths: DatasetPaths) -> str:
    return sorted(entry.name for entry in paths.test_dir.iterdir())[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 500, "a JPEG this small cannot be cut meaningfully"
    path.write_bytes(data[: len(data) // 2])


# --- the clean dataset --------------------------------------------------------------------------


def test_clean_dataset_passes_with_the_right_counts(tiny_dataset):
    report = _validate(tiny_dataset.data_dir)
    assert report["train_images"] == 48
    assert report["train_cars"] == 3
    assert report["test_images"] == 32
    assert report["test_cars"] == 2
    assert report["image_size"] == {"height": 64, "width": 96}
    assert report["problems"] == []
    coverage = report["mask_coverage"]
    assert 0 < coverage["min"] <= coverage["mean"] <= coverage["max"] < 1
    assert 0.05 <= coverage["mean"] <= 0.6


def test_clean_dataset_passes_with_full_test_decoding_and_threads(tiny_dataset):
    report = _validate(tiny_dataset.data_dir, decode_test=True, workers=4, train_images=48, test_images=32)
    assert report["test_images_decoded"] is True
    assert (report["train_images"], report["test_images"]) == (48, 32)


def test_hidden_files_are_ignored(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    for folder in (paths.train_dir, paths.train_masks_dir, paths.test_dir):
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    report = _validate(dataset_copy.data_dir)
    assert (report["train_images"], report["test_images"]) == (48, 32)


def test_image_size_is_height_width(tiny_dataset):
    """Swapping height and width must fail, for train and test images alike."""
    paths = DatasetPaths(tiny_dataset.data_dir)
    with pytest.raises(DataValidationError) as caught:
        validate(paths, ValidationSpec(image_size=(96, 64)))
    message = str(caught.value)
    assert re.search(
        _problem(paths.train_dir / _first_train_image(paths), "image is 96x64 (WxH), expected 64x96 (WxH)"),
        message,
    )
    assert re.search(
        _problem(paths.test_dir / _first_test_image(paths), "image is 96x64 (WxH), expected 64x96 (WxH)"),
        message,
    )
    assert message.startswith(f"80 problem(s) in the dataset at {paths.data_dir}:")


def test_expected_counts_not_met(tiny_dataset):
    data_dir = tiny_dataset.data_dir
    with pytest.raises(DataValidationError) as caught:
        _validate(data_dir, train_images=5088, test_images=100064)
    message = str(caught.value)
    assert re.search(_problem(data_dir / "train", "48 images, the competition has 5088"), message)
    assert re.search(_problem(data_dir / "test", "32 images, the competition has 100064"), message)
    assert message.startswith("2 problem(s)")


# --- one corruption each ------------------------------------------------------------------------


def test_truncated_train_jpeg(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    image = paths.train_dir / _first_train_image(paths)
    _truncate(image)
    with pytest.raises(DataValidationError, match=_problem(image, "truncated JPEG (no end-of-image marker)")):
        _validate(dataset_copy.data_dir)


def test_truncated_test_jpeg(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    image = paths.test_dir / _first_test_image(paths)
    _truncate(image)
    with pytest.raises(DataValidationError, match=_problem(image, "truncated JPEG (no end-of-image marker)")):
        _validate(dataset_copy.data_dir)


def test_zero_byte_jpeg(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    image = paths.test_dir / _first_test_image(paths)
    image.write_bytes(b"")
    with pytest.raises(DataValidationError, match=_problem(image, "zero-byte image file")):
        _validate(dataset_copy.data_dir)


def test_non_jpeg_bytes_under_a_jpeg_name(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    image = paths.train_dir / _first_train_image(paths)
    shutil.copyfile(paths.mask_path(image.name), image)  # a GIF named .jpg
    with pytest.raises(DataValidationError, match=_problem(image, "not a JPEG file (no JPEG start marker)")):
        _validate(dataset_copy.data_dir)


def test_zero_byte_gif(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    mask = paths.mask_path(_first_train_image(paths))
    mask.write_bytes(b"")
    with pytest.raises(DataValidationError, match=_problem(mask, "zero-byte mask file")):
        _validate(dataset_copy.data_dir)


def test_mask_whose_size_differs_from_its_image(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    mask = paths.mask_path(_first_train_image(paths))
    small = np.zeros((10, 10), np.uint8)
    small[2:5, 3:8] = 1
    write_mask(mask, small)
    assert read_mask(mask).shape == (10, 10)
    with pytest.raises(
        DataValidationError, match=_problem(mask, "mask is 10x10 (WxH), its image is 96x64 (WxH)")
    ):
        _validate(dataset_copy.data_dir)


def test_image_without_a_mask(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    img = _first_train_image(paths)
    paths.mask_path(img).unlink()
    expected = _problem(paths.train_dir / img, f"image without a mask (expected {paths.mask_path(img)})")
    with pytest.raises(DataValidationError, match=expected) as caught:
        _validate(dataset_copy.data_dir)
    assert str(caught.value).startswith("1 problem(s)")


def test_mask_without_an_image(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    orphan_img = "0123456789ab_01.jpg"
    assert not (paths.train_dir / orphan_img).exists()
    orphan = paths.mask_path(orphan_img)
    shutil.copyfile(paths.mask_path(_first_train_image(paths)), orphan)
    expected = _problem(orphan, f"mask without an image (expected {paths.train_dir / orphan_img})")
    with pytest.raises(DataValidationError, match=expected) as caught:
        _validate(dataset_copy.data_dir)
    assert str(caught.value).startswith("1 problem(s)")


def test_duplicate_id_in_train_masks_csv(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    lines = paths.train_masks_csv_path.read_text().splitlines()
    assert lines[0] == "img,rle_mask"
    img = lines[1].split(",")[0]
    paths.train_masks_csv_path.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(
        DataValidationError, match=_problem(paths.train_masks_csv_path, f"duplicate id {img} (2 rows)")
    ):
        _validate(dataset_copy.data_dir)


def test_car_with_fewer_than_16_views(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    car = _first_train_image(paths)[:12]
    img = f"{car}_05.jpg"
    (paths.train_dir / img).unlink()
    paths.mask_path(img).unlink()
    with pytest.raises(
        DataValidationError, match=_problem(paths.train_dir, f"car {car} has 15 of 16 views (missing {img})")
    ):
        _validate(dataset_copy.data_dir)


def test_test_car_with_fewer_than_16_views(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    car = _first_test_image(paths)[:12]
    for view in (3, 16):
        (paths.test_dir / f"{car}_{view:02d}.jpg").unlink()
    expected = f"car {car} has 14 of 16 views (missing {car}_03.jpg, {car}_16.jpg)"
    with pytest.raises(DataValidationError, match=_problem(paths.test_dir, expected)):
        _validate(dataset_copy.data_dir)


def test_csv_row_that_disagrees_with_its_gif(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    img = _first_train_image(paths)
    mask_path = paths.mask_path(img)
    mask = read_mask(mask_path)
    assert mask.any() and not mask.all()
    mask[0, :5] ^= 1  # flip 5 pixels
    write_mask(mask_path, mask)
    expected = _problem(
        paths.train_masks_csv_path, f"row {img} disagrees with {mask_path.name} in 5 pixel(s)"
    )
    with pytest.raises(DataValidationError, match=expected):
        _validate(dataset_copy.data_dir)


def test_malformed_rle_in_train_masks_csv(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    lines = paths.train_masks_csv_path.read_text().splitlines()
    img = lines[1].split(",")[0]
    lines[1] = f"{img},1 2 3"
    paths.train_masks_csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataValidationError, match=_problem(paths.train_masks_csv_path, f"row {img}: malformed RLE")
    ):
        _validate(dataset_copy.data_dir)


def test_non_image_file_among_the_images(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    notes = paths.train_dir / "notes.txt"
    notes.write_text("to do\n")
    with pytest.raises(DataValidationError, match=_problem(notes, "not a competition image")):
        _validate(dataset_copy.data_dir)


def test_car_in_both_splits(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    car = _first_train_image(paths)[:12]
    for view in range(1, 17):
        img = f"{car}_{view:02d}.jpg"
        shutil.copyfile(paths.train_dir / img, paths.test_dir / img)
    with pytest.raises(
        DataValidationError, match=_problem(paths.test_dir, f"car {car} is in both train and test")
    ):
        _validate(dataset_copy.data_dir)


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        ("train", "missing folder"),
        ("train_masks", "missing folder"),
        ("test", "missing folder"),
        ("train_masks.csv", "missing file"),
        ("metadata.csv", "missing file"),
        ("sample_submission.csv", "missing file"),
    ],
)
def test_missing_part(dataset_copy, part, problem):
    target = dataset_copy.data_dir / part
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(DataValidationError, match=_problem(target, problem)) as caught:
        _validate(dataset_copy.data_dir)
    assert str(caught.value).startswith("1 problem(s)")


def test_an_empty_dataset_is_rejected(tmp_path):
    # every part present, but no image at all: nothing to train on or predict
    paths = DatasetPaths(tmp_path / "data")
    for folder in (paths.train_dir, paths.train_masks_dir, paths.test_dir):
        folder.mkdir(parents=True)
    paths.train_masks_csv_path.write_text("img,rle_mask\n")
    paths.sample_submission_path.write_text("img,rle_mask\n")
    paths.metadata_path.write_text("id,year,make,model,trim1,trim2\n")
    with pytest.raises(DataValidationError) as caught:
        validate(paths, ValidationSpec())
    message = str(caught.value)
    assert message.startswith("2 problem(s)")
    assert f"{paths.train_dir}: no images" in message
    assert f"{paths.test_dir}: no images" in message


def test_wrong_header_in_sample_submission(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    lines = paths.sample_submission_path.read_text().splitlines()
    assert lines[0] == "img,rle_mask"
    lines[0] = "image,rle"
    paths.sample_submission_path.write_text("\n".join(lines) + "\n")
    expected = _problem(paths.sample_submission_path, "header must be img,rle_mask, found image,rle")
    with pytest.raises(DataValidationError, match=expected):
        _validate(dataset_copy.data_dir)


def test_metadata_without_a_train_car(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    lines = paths.metadata_path.read_text().splitlines()
    car = _first_train_image(paths)[:12]
    kept = [line for line in lines if not line.startswith(car)]
    assert len(kept) == len(lines) - 1
    paths.metadata_path.write_text("\n".join(kept) + "\n")
    with pytest.raises(
        DataValidationError, match=_problem(paths.metadata_path, f"no row for train car {car}")
    ):
        _validate(dataset_copy.data_dir)


def test_all_problems_are_listed_in_one_run(dataset_copy):
    paths = DatasetPaths(dataset_copy.data_dir)
    train_image = paths.train_dir / _first_train_image(paths)
    test_image = paths.test_dir / _first_test_image(paths)
    _truncate(train_image)
    _truncate(test_image)
    with pytest.raises(DataValidationError) as caught:
        _validate(dataset_copy.data_dir)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"2 problem(s) in the dataset at {paths.data_dir}:"
    assert sorted(lines[1:]) == sorted(
        [
            f"{train_image}: truncated JPEG (no end-of-image marker)",
            f"{test_image}: truncated JPEG (no end-of-image marker)",
        ]
    )


def test_problems_beyond_the_limit_are_counted(tiny_dataset):
    with pytest.raises(DataValidationError) as caught:
        validate(DatasetPaths(tiny_dataset.data_dir), ValidationSpec(image_size=(96, 64), max_problems=5))
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("80 problem(s)")
    assert len(lines) == 1 + 5 + 1
    assert lines[-1] == "... and 75 more"


# --- the CLI ------------------------------------------------------------------------------------


def _cli_args(data_dir: Path, report_path: Path) -> list[str]:
    return [
        "validate-data",
        "--data-dir",
        str(data_dir),
        "--report-path",
        str(report_path),
        "--image-size",
        "64",
        "96",
    ]


def test_cli_writes_the_report_on_a_clean_dataset(tiny_dataset, tmp_path, capsys):
    report_path = tmp_path / "reports" / "data.json"
    assert main(_cli_args(tiny_dataset.data_dir, report_path)) == 0
    report = json.loads(report_path.read_text())
    assert (report["train_images"], report["train_cars"], report["test_images"]) == (48, 3, 32)
    assert report["image_size"] == {"height": 64, "width": 96}
    assert report["data_dir"] == str(tiny_dataset.data_dir)
    assert "dataset OK: 48 train images of 3 cars, 32 test images of 2 cars" in capsys.readouterr().out


def test_cli_fails_on_a_corrupted_dataset_and_writes_no_report(dataset_copy, tmp_path, capsys):
    paths = DatasetPaths(dataset_copy.data_dir)
    image = paths.test_dir / _first_test_image(paths)
    _truncate(image)
    report_path = tmp_path / "report.json"
    assert main(_cli_args(dataset_copy.data_dir, report_path)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("carvana validate-data: 1 problem(s)")
    assert f"{image}: truncated JPEG (no end-of-image marker)" in captured.err
    assert not report_path.exists()
    assert list(tmp_path.glob("*report*")) == []


def test_cli_expected_counts_flags(tiny_dataset, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    args = [*_cli_args(tiny_dataset.data_dir, report_path), "--train-images", "5088", "--test-images", "32"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{tiny_dataset.data_dir / 'train'}: 48 images, the competition has 5088" in err
    assert "the competition has 32" not in err
    assert not report_path.exists()
