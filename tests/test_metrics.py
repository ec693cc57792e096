"""Dice, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carvana.metrics import dice, dice_per_image


def test_dice_of_a_hand_made_pair() -> None:
    # prediction 3 pixels, truth 2 pixels, 1 in common: 2 * 1 / (3 + 2) = 0.4
    prediction = np.array([[1, 1, 0], [1, 0, 0]])
    truth = np.array([[1, 0, 0], [0, 0, 1]])
    assert dice(prediction, truth) == pytest.approx(0.4)
    assert dice(truth, truth) == 1.0
    assert dice(np.zeros((2, 3)), np.zeros((2, 3))) == 1.0  # both empty: exactly right
    assert dice(np.zeros((2, 3)), truth) == 0.0


def test_batched_dice_equals_the_per_image_one() -> None:
    rng = np.random.default_rng(3)
    prediction = rng.random((4, 1, 5, 7)) > 0.5
    truth = rng.random((4, 1, 5, 7)) > 0.4
    truth[3] = prediction[3] = False  # an empty pair scores 1
    expected = [dice(p[0], t[0]) for p, t in zip(prediction, truth, strict=True)]
    assert expected[3] == 1.0 and 0 < min(expected[:3]) < 1
    got = dice_per_image(torch.from_numpy(prediction), torch.from_numpy(truth))
    assert got.tolist() == pytest.approx(expected)


def test_any_nonzero_value_is_foreground_as_documented() -> None:
    # Both functions take "nonzero as foreground", so 0.3 and 0.2 count as car as much as 1 or 255.
    # Prediction nonzero at (0,0), (0,1), (1,0): 3 pixels; truth at (0,0), (1,2): 2 pixels; in
    # common (0,0): 2 * 1 / (3 + 2) = 0.4. (Cut at 0.5 instead, the prediction keeps (1,0) alone
    # and the truth (1,2) alone: Dice 0.)
    prediction = np.array([[0.3, 0.2, 0.0], [255.0, 0.0, 0.0]])
    truth = np.array([[0.4, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert dice(prediction, truth) == pytest.approx(0.4)
    assert dice(prediction.astype(np.float32), truth.astype(np.float32)) == pytest.approx(0.4)
    # A second image: a faint prediction everywhere (0.1) against no car: 2 * 0 / (6 + 0) = 0, not
    # the 1 of two empty masks.
    faint, empty = np.full((2, 3), 0.1), np.zeros((2, 3))
    assert dice(faint, empty) == 0.0
    got = dice_per_image(torch.tensor(np.stack([prediction, faint])), torch.tensor(np.stack([truth, empty])))
    assert got.tolist() == pytest.approx([0.4, 0.0])


def test_dice_refuses_masks_of_different_sizes() -> None:
    with pytest.raises(ValueError, match=r"prediction is \(2, 3\), truth is \(3, 2\)"):
        dice(np.zeros((2, 3)), np.zeros((3, 2)))


def test_a_single_wrong_pixel_scores_zero_not_one() -> None:
    # Each 2x3 image has one foreground pixel in all: |X| + |Y| = 1, so Dice = 2 * 0 / 1 = 0. Only
    # |X| + |Y| = 0 (both empty) scores 1.
    one_pixel, empty = np.zeros((2, 3)), np.zeros((2, 3))
    one_pixel[1, 2] = 1
    assert dice(one_pixel, empty) == 0.0
    assert dice(empty, one_pixel) == 0.0
    got = dice_per_image(
        torch.tensor(np.stack([one_pixel, empty])), torch.tensor(np.stack([empty, one_pixel]))
    )
    assert got.tolist() == [0.0, 0.0]
