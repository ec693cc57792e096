"""Reading and writing images (RGB JPEG) and masks (palette GIF, 0/1)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from carvana.data import images

HEIGHT, WIDTH = 37, 53  # non-square, so swapped height and width change the shape


def random_mask(height: int, width: int, seed: int) -> np.ndarray:
    mask = (np.random.default_rng(seed).random((height, width)) < 0.5).astype(np.uint8)
    assert mask.any() and not mask.all(), "degenerate fixture: the mask must hold both values"
    return mask


def test_write_mask_then_read_mask_round_trips(tmp_path: Path) -> None:
    mask = random_mask(HEIGHT, WIDTH, seed=0)
    path = tmp_path / "m_mask.gif"
    images.write_mask(path, mask)
    back = images.read_mask(path)
    assert back.dtype == np.uint8
    assert back.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(back, mask)


def test_write_mask_treats_any_nonzero_value_as_car(tmp_path: Path) -> None:
    mask = random_mask(HEIGHT, WIDTH, seed=1)
    path = tmp_path / "m_mask.gif"
    images.write_mask(path, mask.astype(bool))
    np.testing.assert_array_equal(images.read_mask(path), mask)
    images.write_mask(path, mask * np.uint8(255))
    np.testing.assert_array_equal(images.read_mask(path), mask)


def test_written_mask_is_a_palette_gif_with_indices_0_1_that_opencv_reads_as_0_255(tmp_path: Path) -> None:
    mask = random_mask(HEIGHT, WIDTH, seed=2)
    path = tmp_path / "m_mask.gif"
    images.write_mask(path, mask)
    with Image.open(path) as image:
        assert image.format == "GIF"
        assert image.mode == "P"
        indices = np.asarray(image)
        palette = image.getpalette()
    # PIL gives the palette indices: 0 background, 1 car, as in the competition's files.
    np.testing.assert_array_equal(indices, mask)
    assert palette is not None
    assert palette[:6] == [0, 0, 0, 255, 255, 255]  # index 0 black, index 1 white
    # OpenCV applies the palette: black 0, white 255.
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert grey is not None
    np.testing.assert_array_equal(grey, mask * np.uint8(255))


def test_an_all_car_mask_is_written_with_the_car_as_index_1(tmp_path: Path) -> None:
    path = tmp_path / "m_mask.gif"
    images.write_mask(path, np.ones((HEIGHT, WIDTH), dtype=np.uint8))
    with Image.open(path) as image:
        assert np.asarray(image).min() == 1


@pytest.mark.parametrize("value", [0, 1], ids=["empty", "full"])
def test_uniform_masks_read_back(tmp_path: Path, value: int) -> None:
    mask = np.full((HEIGHT, WIDTH), value, dtype=np.uint8)
    path = tmp_path / "m_mask.gif"
    images.write_mask(path, mask)
    np.testing.assert_array_equal(images.read_mask(path), mask)


def test_read_mask_follows_the_palette_colour_not_the_index(tmp_path: Path) -> None:
    # A GIF whose palette has white at index 0 and black at index 1: car pixels are stored as 0.
    mask = random_mask(HEIGHT, WIDTH, seed=3)
    image = Image.fromarray((1 - mask).astype(np.uint8), mode="P")
    image.putpalette([255, 255, 255, 0, 0, 0])
    path = tmp_path / "inverted_mask.gif"
    image.save(path, format="GIF", optimize=False)
    with Image.open(path) as check:  # guard: the file really stores the inverted palette
        assert check.getpalette()[:6] == [255, 255, 255, 0, 0, 0]  # type: ignore[index]
        np.testing.assert_array_equal(np.asarray(check), 1 - mask)
    np.testing.assert_array_equal(images.read_mask(path), mask)


def test_read_mask_reads_a_grayscale_png(tmp_path: Path) -> None:
    mask = random_mask(HEIGHT, WIDTH, seed=4)
    path = tmp_path / "m.png"
    Image.fromarray(mask * np.uint8(255), mode="L").save(path)
    np.testing.assert_array_equal(images.read_mask(path), mask)


def test_read_mask_of_an_empty_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "empty_mask.gif"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable mask image")):
        images.read_mask(path)


def test_read_mask_of_a_text_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "text_mask.gif"
    path.write_text("img,rle_mask\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable mask image")):
        images.read_mask(path)


def test_read_mask_rejects_a_colour_image(tmp_path: Path) -> None:
    path = tmp_path / "rgb.png"
    Image.new("RGB", (WIDTH, HEIGHT)).save(path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: a mask must be a palette or grayscale image")):
        images.read_mask(path)


def test_write_mask_rejects_a_3d_array(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be 2-D \(height, width\)"):
        images.write_mask(tmp_path / "m_mask.gif", np.zeros((HEIGHT, WIDTH, 1), dtype=np.uint8))


def test_jpeg_round_trip_keeps_height_width_and_rgb_order(tmp_path: Path) -> None:
    red = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    red[..., 0] = 255  # pure red in RGB; in OpenCV's BGR order this would be blue
    path = tmp_path / "red.jpg"
    images.write_jpeg(path, red, quality=95)
    back = images.read_image(path)
    assert back.dtype == np.uint8
    assert back.shape == (HEIGHT, WIDTH, 3)
    # JPEG is lossy; a pure colour stays within a few levels. 200/50 leave a wide margin.
    assert back[..., 0].min() > 200
    assert back[..., 2].max() < 50
    assert back[..., 1].max() < 50


def test_jpeg_round_trip_keeps_a_gradient_close(tmp_path: Path) -> None:
    # A smooth image survives quality-95 JPEG within a few levels on average; a transposed or
    # channel-swapped decode would be off by far more (the channels differ by up to 255).
    rows = np.linspace(0, 255, HEIGHT, dtype=np.float64)[:, None]
    cols = np.linspace(0, 255, WIDTH, dtype=np.float64)[None, :]
    red = np.broadcast_to(rows, (HEIGHT, WIDTH))
    green = np.broadcast_to(cols, (HEIGHT, WIDTH))
    blue = np.full((HEIGHT, WIDTH), 128.0)
    rgb = np.stack([red, green, blue], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.jpg"
    images.write_jpeg(path, rgb, quality=95)
    error = np.abs(images.read_image(path).astype(np.int16) - rgb.astype(np.int16))
    assert error.mean() < 4


def test_read_image_of_a_text_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "not.jpg"
    path.write_text("not a jpeg", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable image")):
        images.read_image(path)


def test_image_size_is_height_width(tmp_path: Path) -> None:
    jpeg_path = tmp_path / "a.jpg"
    images.write_jpeg(jpeg_path, np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8), quality=90)
    assert images.image_size(jpeg_path) == (HEIGHT, WIDTH) == (37, 53)
    mask_path = tmp_path / "a_mask.gif"
    images.write_mask(mask_path, random_mask(HEIGHT, WIDTH, seed=5))
    assert images.image_size(mask_path) == (HEIGHT, WIDTH)
