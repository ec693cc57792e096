"""Run-length encoding in the competition's format: row-major, 1-indexed ``start length`` pairs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from carvana import rle

# The hand-worked 3x4 mask (height 3, width 4).
#
#   row 0:  0 1 1 0      pixels  1  2  3  4
#   row 1:  0 0 0 1      pixels  5  6  7  8
#   row 2:  1 1 0 0      pixels  9 10 11 12
#
# Row-major (C order) flattening, pixels numbered from 1:
#   pixel: 1 2 3 4 5 6 7 8 9 10 11 12
#   value: 0 1 1 0 0 0 0 1 1  1  0  0
# Runs of ones: pixels 2..3 (start 2, length 2) and pixels 8..10 (start 8, length 3; the run
# wraps from the end of row 1 into row 2). So the RLE is "2 2 8 3" and the area is 2 + 3 = 5.
HAND_MASK = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], dtype=np.uint8)
HAND_RLE = "2 2 8 3"


def random_mask(height: int, width: int, seed: int) -> np.ndarray:
    mask = (np.random.default_rng(seed).random((height, width)) < 0.5).astype(np.uint8)
    assert mask.any() and not mask.all(), "degenerate fixture: the mask must hold both values"
    return mask


def test_hand_worked_mask_encodes_to_hand_worked_string() -> None:
    assert rle.encode(HAND_MASK) == HAND_RLE


def test_runs_are_the_hand_worked_numbers_and_text_writes_them_as_encode_does() -> None:
    pairs = rle.runs(HAND_MASK)
    assert pairs.dtype == np.int64
    assert pairs.tolist() == [2, 2, 8, 3]
    assert rle.text(pairs) == HAND_RLE
    assert rle.text(np.array([1, 12, 100_000_000, 2], dtype=np.int64)) == "1 12 100000000 2"
    assert rle.text(np.array([], dtype=np.int64)) == ""


def test_hand_worked_string_decodes_to_hand_worked_mask() -> None:
    decoded = rle.decode(HAND_RLE, (3, 4))
    assert decoded.dtype == np.uint8
    assert decoded.shape == (3, 4)
    np.testing.assert_array_equal(decoded, HAND_MASK)


def test_column_major_would_give_a_different_string() -> None:
    # Column-major (Fortran order) reads the columns top to bottom:
    #   column 0: 0 0 1    pixels  1  2  3
    #   column 1: 1 0 1    pixels  4  5  6
    #   column 2: 1 0 0    pixels  7  8  9
    #   column 3: 0 1 0    pixels 10 11 12
    # value: 0 0 1 1 0 1 1 0 0 0 1 0 -> runs (3, 2), (6, 2), (11, 1): "3 2 6 2 11 1".
    # The competition is row-major, so encode must not give this.
    assert rle.encode(HAND_MASK.T) == "3 2 6 2 11 1"  # encoding the transpose row-major = column-major
    assert rle.encode(HAND_MASK) != "3 2 6 2 11 1"


def test_encode_is_row_major_even_for_a_fortran_ordered_array() -> None:
    assert rle.encode(np.asfortranarray(HAND_MASK)) == HAND_RLE


def test_runs_touching_the_first_and_the_last_pixel() -> None:
    # 2x3 mask: flat 1 0 0 0 1 1 -> a run at pixel 1 (length 1) and one ending on pixel 6 (5, 2).
    mask = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.uint8)
    assert rle.encode(mask) == "1 1 5 2"
    np.testing.assert_array_equal(rle.decode("1 1 5 2", (2, 3)), mask)


def test_empty_mask_is_the_empty_string() -> None:
    assert rle.encode(np.zeros((3, 4), dtype=np.uint8)) == ""
    decoded = rle.decode("", (3, 4))
    assert decoded.shape == (3, 4)
    assert not decoded.any()
    assert rle.area("") == 0


def test_full_mask_is_one_run_of_every_pixel() -> None:
    # 3x4 = 12 pixels, all ones: one run from pixel 1, length 12.
    assert rle.encode(np.ones((3, 4), dtype=np.uint8)) == "1 12"
    np.testing.assert_array_equal(rle.decode("1 12", (3, 4)), np.ones((3, 4), dtype=np.uint8))


@pytest.mark.parametrize(("height", "width"), [(5, 7), (7, 5), (101, 99)])
def test_round_trip_on_non_square_masks(height: int, width: int) -> None:
    mask = random_mask(height, width, seed=height * 1000 + width)
    decoded = rle.decode(rle.encode(mask), (height, width))
    assert decoded.shape == (height, width)
    np.testing.assert_array_equal(decoded, mask)


@pytest.mark.parametrize(("height", "width"), [(5, 7), (101, 99)])
def test_decode_with_swapped_height_and_width_is_not_the_transpose(height: int, width: int) -> None:
    # Decoding with (width, height) only re-cuts the same row-major pixel sequence into rows of
    # another length; it is not the transposed mask. A decoder that swapped the axes internally
    # (reshape to (width, height) and transpose) would pass the round trip on square masks only.
    mask = random_mask(height, width, seed=7)
    text = rle.encode(mask)
    swapped = rle.decode(text, (width, height))
    assert swapped.shape == (width, height)
    assert not np.array_equal(swapped, mask.T)
    np.testing.assert_array_equal(swapped.reshape(-1), mask.reshape(-1))


@pytest.mark.parametrize(
    "mask",
    [
        HAND_MASK.astype(bool),
        HAND_MASK,  # uint8 0/1
        HAND_MASK * np.uint8(255),  # uint8 0/255, as OpenCV reads a mask
    ],
    ids=["bool", "uint8-0-1", "uint8-0-255"],
)
def test_encode_accepts_bool_and_uint8_masks_alike(mask: np.ndarray) -> None:
    assert rle.encode(mask) == HAND_RLE


@pytest.mark.parametrize(
    "mask",
    [
        HAND_MASK.astype(np.int64),  # 8 bytes a pixel: a byte view of it would be 8x too long
        HAND_MASK.astype(np.float32) * np.float32(0.7),  # a probability-like map, nonzero = car
        # uint8 with several nonzero values: the car is still the run 2..3 and the run 8..10, and
        # neither 1 -> 2 nor 200 -> 7 inside a run starts a new one.
        np.array([[0, 1, 2, 0], [0, 0, 0, 200], [7, 255, 0, 0]], dtype=np.uint8),
    ],
    ids=["int64", "float32", "uint8-mixed-nonzero"],
)
def test_encode_takes_any_dtype_with_nonzero_as_foreground(mask: np.ndarray) -> None:
    assert rle.encode(mask) == HAND_RLE


def test_encode_rejects_a_mask_that_is_not_2d() -> None:
    with pytest.raises(ValueError, match=r"must be 2-D \(height, width\), got shape \(3, 4, 1\)"):
        rle.encode(HAND_MASK[:, :, None])


def test_area_equals_the_mask_sum() -> None:
    assert rle.area(HAND_RLE) == 5 == int(HAND_MASK.sum())
    mask = random_mask(101, 99, seed=3)
    assert rle.area(rle.encode(mask)) == int(mask.sum())


def test_parse_returns_zero_indexed_starts_and_lengths() -> None:
    # "2 2 8 3": 1-indexed starts 2 and 8 are 0-indexed 1 and 7.
    starts, lengths = rle.parse(HAND_RLE, (3, 4))
    assert starts.tolist() == [1, 7]
    assert lengths.tolist() == [2, 3]


# Every case is checked against a 3x4 mask (12 pixels).
BAD_RLES = [
    ("1 2 5", r"start/length pairs, got 3 numbers"),
    ("1 2.5", r"integers only: '1 2\.5'"),
    ("a b", r"integers only: 'a b'"),
    ("0 2", r"1-indexed"),
    ("3 0", r"lengths must be positive"),
    ("3 -1", r"lengths must be positive"),
    # Start 11 (0-indexed 10) + length 3 ends at 0-indexed pixel 13 > 12.
    ("11 3", r"ends at pixel 13, past the 3x4 mask \(12 pixels\)"),
    # Overlap: run 1 covers pixels 1..3, run 2 starts at 2.
    ("1 3 2 2", r"run 2 starts at 2, the previous one ends at 3"),
    # Descending: run 1 covers pixel 5, run 2 starts at 1.
    ("5 1 1 1", r"run 2 starts at 1, the previous one ends at 5"),
    # Touching: run 1 covers pixels 1..2, run 2 starts at 3 (should have been "1 4").
    ("1 2 3 2", r"run 2 starts at 3, the previous one ends at 2"),
    # Runs 1 and 2 are fine (pixel 1; pixels 5..7); run 3 starts at 6, inside run 2. Every run
    # must be checked against the one before it, not only against the first.
    ("1 1 5 3 6 1", r"run 3 starts at 6, the previous one ends at 7"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RLES, ids=[text for text, _ in BAD_RLES])
def test_parse_rejects_malformed_rle(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle.parse(text, (3, 4))


@pytest.mark.parametrize(("text", "message"), BAD_RLES, ids=[text for text, _ in BAD_RLES])
def test_decode_rejects_malformed_rle(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle.decode(text, (3, 4))


def test_a_run_ending_on_the_last_pixel_is_accepted() -> None:
    # The boundary next to "11 3": start 11, length 2 covers pixels 11..12 exactly.
    np.testing.assert_array_equal(rle.decode("11 2", (3, 4)).reshape(-1), [0] * 10 + [1, 1])


@pytest.mark.parametrize("text", ["", "   "], ids=["empty", "blank"])
def test_an_empty_rle_parses_to_no_runs(text: str) -> None:
    # The documented result: int64 starts and lengths, both of size 0 (an image without a car).
    starts, lengths = rle.parse(text, (3, 4))
    assert (starts.shape, lengths.shape) == ((0,), (0,))
    assert (starts.dtype, lengths.dtype) == (np.int64, np.int64)


# A bad cell is quoted in the error whole up to 60 characters, cut to its first 60 and "..." beyond
# that, so that a corrupt megabyte-long cell of a submission does not flood the report.
CLIPPED = [
    (60, "1 " * 29 + "1x", "1 " * 29 + "1x"),  # shown whole
    (61, "1 " * 30 + "x", "1 " * 30 + "..."),  # the first 60 characters, then "..."
    (10_001, "1 " * 5000 + "x", "1 " * 30 + "..."),
]


@pytest.mark.parametrize(("length", "text", "shown"), CLIPPED, ids=["60", "61", "10001"])
def test_a_long_malformed_rle_is_quoted_clipped_to_60_characters(length: int, text: str, shown: str) -> None:
    assert len(text) == length
    with pytest.raises(ValueError, match=re.escape(f"integers only: '{shown}'") + "$"):
        rle.parse(text, (3, 4))


def test_parse_rejects_a_non_string() -> None:
    with pytest.raises(ValueError, match="must be a string, got float"):
        rle.parse(float("nan"), (3, 4))  # type: ignore[arg-type]  # what pandas gives for an empty cell
