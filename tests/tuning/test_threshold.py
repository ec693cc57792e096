"""Threshold tuning: exact Dice at every threshold, the brute-force best, and the stage's files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from carvana.metrics import dice
from carvana.tuning.oof_set import ENSEMBLE, TunePaths, oof_dice
from carvana.tuning.threshold import ThresholdGrid, best_threshold, dice_at_thresholds, value_counts
from carvana.tuning.tune import tune
from oof_sets import IMAGES, oof_set


def test_dice_by_counting_equals_dice_by_thresholding_each_map() -> None:
    rng = np.random.default_rng(5)
    truth = rng.random((37, 53)) > 0.6
    probability = np.clip(truth * 160 + rng.normal(60, 50, truth.shape), 0, 255).astype(np.uint8)
    thresholds = ThresholdGrid(0.05, 0.95, 0.05).values()
    counted = dice_at_thresholds(*value_counts(probability, truth, 255), thresholds)
    direct = [dice(probability / 255 >= t, truth) for t in thresholds]
    assert len(set(np.round(direct, 4))) > 5  # the thresholds do change the mask
    assert counted == pytest.approx(direct, abs=1e-12)


def test_an_ensembles_sum_is_thresholded_as_its_mean() -> None:
    truth = np.array([[1, 1, 0, 0]])
    a = np.array([[255, 100, 200, 0]], dtype=np.uint8)
    b = np.array([[255, 120, 0, 0]], dtype=np.uint8)
    # means 255, 110, 100, 0 (of 255): at 0.42 (107.1) pixels 0 and 1 are car -> Dice 1
    total = a.astype(np.uint16) + b
    [at_042, at_045] = dice_at_thresholds(*value_counts(total, truth, 510), np.array([0.42, 0.45]))
    assert at_042 == 1.0
    assert at_045 == pytest.approx(2 * 1 / (1 + 2))  # only pixel 0 (110 < 114.75)


def test_the_tuned_threshold_is_the_brute_force_best_on_a_hand_made_oof_set() -> None:
    rng = np.random.default_rng(11)
    thresholds = ThresholdGrid().values()
    assert len(thresholds) == 41 and thresholds[0] == 0.30 and thresholds[-1] == 0.70
    images = []
    for _ in range(6):
        truth = rng.random((20, 30)) > 0.5
        images.append(
            (np.clip(truth * 120 + rng.normal(70, 45, truth.shape), 0, 255).astype(np.uint8), truth)
        )
    mean_counted = np.mean(
        [dice_at_thresholds(*value_counts(p, t, 255), thresholds) for p, t in images], axis=0
    )
    brute = [np.mean([dice(p / 255 >= t, truth) for p, truth in images]) for t in thresholds]
    best = int(np.argmax(brute))
    assert 0 < best < 40  # an interior optimum, not the grid's edge
    assert best_threshold(thresholds, mean_counted) == pytest.approx((thresholds[best], brute[best]))


def test_value_counts_has_one_bin_per_value_up_to_the_scale() -> None:
    # A 2x3 map on scale 5 whose values stop well below 5:
    #   values 0 1 2      truth 1 0 1
    #          3 1 0            0 1 0
    # car pixels take 0, 2, 1 -> counts at 0..5: 1 1 1 0 0 0
    # background pixels take 1, 3, 0 -> 1 1 0 1 0 0
    values = np.array([[0, 1, 2], [3, 1, 0]], dtype=np.uint8)
    truth = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.uint8)
    car, background = value_counts(values, truth, 5)
    assert car.tolist() == [1, 1, 1, 0, 0, 0]
    assert background.tolist() == [1, 1, 0, 1, 0, 0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([[0, 256]], dtype=np.uint16), r"\[0, 255\], got 0\.\.256"),  # above only
        (np.array([[-1, 255]], dtype=np.int16), r"\[0, 255\], got -1\.\.255"),  # below only
    ],
    ids=["above", "below"],
)
def test_value_counts_rejects_values_outside_zero_to_scale(values: np.ndarray, message: str) -> None:
    # e.g. the sum of two uint8 maps passed with the scale of one: its top values would count as
    # levels past the scale and shift every threshold
    with pytest.raises(ValueError, match=f"values must lie in {message}"):
        value_counts(values, np.zeros((1, 2), dtype=np.uint8), 255)


def test_value_counts_refuses_a_map_and_mask_of_different_sizes() -> None:
    with pytest.raises(ValueError, match=r"probabilities are \(2, 3\), the mask is \(3, 2\)"):
        value_counts(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 255)


def test_one_wrong_pixel_scores_zero_at_a_threshold() -> None:
    # 1x2 images, scale 255, thresholds 0.5 (car from 128) and 0.9 (car from 230).
    thresholds = np.array([0.5, 0.9])
    no_car = np.zeros((1, 2), dtype=np.uint8)
    # No car, one pixel at 200: at 0.5 it alone is predicted, 2*0/(1+0) = 0; at 0.9 nothing is: 1.
    spurious = dice_at_thresholds(*value_counts(np.array([[200, 0]], np.uint8), no_car, 255), thresholds)
    assert spurious.tolist() == [0.0, 1.0]
    # One car pixel at 10: missed at both, 2*0/(0+1) = 0.
    one_car = np.array([[1, 0]], dtype=np.uint8)
    missed = dice_at_thresholds(*value_counts(np.array([[10, 0]], np.uint8), one_car, 255), thresholds)
    assert missed.tolist() == [0.0, 0.0]


def test_a_grid_of_one_threshold_is_allowed() -> None:
    # start == stop fixes the threshold (the inclusive bounds of the docstring)
    assert ThresholdGrid(0.5, 0.5, 0.01).values().tolist() == [0.5]


def test_ties_go_to_the_threshold_nearest_one_half() -> None:
    thresholds = np.array([0.3, 0.4, 0.5, 0.6])
    assert best_threshold(thresholds, np.array([0.9, 0.95, 0.95, 0.95]))[0] == 0.5
    assert best_threshold(thresholds, np.array([0.95, 0.95, 0.9, 0.9]))[0] == 0.4


def test_two_empty_masks_score_one_and_can_decide_the_threshold() -> None:
    # A hand-made OOF set of two 2x3 images on the grid 0.3, 0.4, ..., 0.7, whose first car levels
    # (of 255) are ceil(255 t) = 77, 102, 128, 153, 179.
    thresholds = ThresholdGrid(0.3, 0.7, 0.1).values()
    # Image A: no car; every pixel at 100. At 0.3 all 6 pixels are predicted: Dice 2*0/(6+0) = 0.
    # From 0.4 on nothing is predicted: two empty masks, Dice 1.
    empty_truth = np.zeros((2, 3), dtype=np.uint8)
    a = dice_at_thresholds(*value_counts(np.full((2, 3), 100, np.uint8), empty_truth, 255), thresholds)
    assert a.tolist() == [0, 1, 1, 1, 1]
    silent = dice_at_thresholds(*value_counts(np.zeros((2, 3), np.uint8), empty_truth, 255), thresholds)
    assert silent.tolist() == [1, 1, 1, 1, 1]
    # Image B: 4 car pixels at 90, 90, 255, 255 and 2 background pixels at 0. At 0.3 all 4 are
    # found: Dice 1; from 0.4 on only the two at 255: 2*2/(2+4) = 2/3.
    truth = np.array([[1, 1, 1], [1, 0, 0]], dtype=np.uint8)
    probability = np.array([[90, 90, 255], [255, 0, 0]], dtype=np.uint8)
    b = dice_at_thresholds(*value_counts(probability, truth, 255), thresholds)
    assert b == pytest.approx([1, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    # Mean (0+1)/2 = 1/2 at 0.3 and (1 + 2/3)/2 = 5/6 from 0.4 to 0.7: the tie goes to 0.5. (Were
    # the empty pair scored 0, the mean would be 1/2, 1/3, ... and 0.3 would win.)
    assert best_threshold(thresholds, np.mean([a, b], axis=0)) == pytest.approx((0.5, 5 / 6))


@pytest.mark.parametrize(
    ("start", "stop", "step"), [(0.0, 0.7, 0.01), (0.3, 1.0, 0.01), (0.6, 0.4, 0.01), (0.3, 0.7, 0)]
)
def test_a_grid_outside_zero_one_is_rejected(start: float, stop: float, step: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        ThresholdGrid(start, stop, step)


def _oof_set(tmp_path: Path, maps: dict[str, np.ndarray]) -> TunePaths:
    """Four images, two cars, one per fold, all with the mask ``TRUTH``; each model's OOF map of
    every image is ``maps[model]``."""
    by_image = {
        model: {img: probability.astype(np.uint8) for img in IMAGES} for model, probability in maps.items()
    }
    return oof_set(tmp_path, by_image, dict.fromkeys(IMAGES, TRUTH))


TRUTH = np.zeros((6, 8), dtype=np.uint8)
TRUTH[2:5, 1:6] = 1


def test_tune_writes_thresholds_scores_and_plot(tmp_path: Path) -> None:
    # "sharp" is right at any threshold, "soft" only below 0.6
    paths = _oof_set(tmp_path, {"sharp": TRUTH * 255, "soft": TRUTH * 150 + 20})
    result = tune(paths, ["sharp", "soft"], ThresholdGrid(0.3, 0.7, 0.1))
    # the ensemble's car pixels average (255 + 170) / 2 = 212.5, its background 10: right everywhere
    assert result["ensemble"]["dice"] == 1.0 and result["threshold"] == 0.5
    assert result["models"]["soft"] == {"threshold": 0.5, "dice": 1.0}
    assert json.loads((paths.out_dir / "thresholds.json").read_text()) == result
    scores = pd.read_csv(paths.out_dir / "oof_scores.csv")
    assert len(scores) == 3 * 3  # sharp, soft, ensemble x (all, fold 0, fold 1)
    assert set(scores["model"]) == {"sharp", "soft", ENSEMBLE}
    assert scores.loc[scores["fold"] == "all", "images"].tolist() == [4, 4, 4]
    assert cv2.imread(str(paths.out_dir / "dice_vs_threshold.png")).shape[:2] == (450, 700)


def test_the_ensemble_is_tuned_on_the_weighted_mean_that_prediction_thresholds(tmp_path: Path) -> None:
    # car pixels: "sharp" 255, "dull" 100. Equal weights: (255 + 100) / 2 / 255 = 0.696, right at
    # every threshold up to 0.6. "dull" weighing 3: (255 + 300) / 4 / 255 = 0.544, right up to 0.5.
    paths = _oof_set(tmp_path, {"sharp": TRUTH * 255, "dull": TRUTH * 100})
    grid = ThresholdGrid(0.3, 0.7, 0.1)
    _, equal = oof_dice(paths, ["sharp", "dull"], grid)
    _, weighted = oof_dice(paths, ["sharp", "dull"], grid, {"dull": 3})
    assert equal[ENSEMBLE].mean(axis=0).tolist() == [1, 1, 1, 1, 0]
    assert weighted[ENSEMBLE].mean(axis=0).tolist() == [1, 1, 1, 0, 0]
    assert weighted["dull"].mean(axis=0).tolist() == [1, 0, 0, 0, 0]  # each model's own curve stays
    result = tune(paths, ["sharp", "dull"], grid, {"dull": 3})
    assert result["weights"] == {"sharp": 1.0, "dull": 3.0}


def test_thresholds_json_gets_the_ensembles_best_threshold_not_a_models(tmp_path: Path) -> None:
    # TRUTH has 15 car and 33 background pixels. Grid 0.3..0.7 by 0.1: a model's map counts as car
    # from ceil(255 t) = 77, 102, 128, 153, 179; the two-model sum from ceil(510 t) = 153, 204, 255,
    # 306, 357.
    # "low": car 90, background 0. At 0.3 exactly the car: Dice 1; above, nothing: Dice 0. Best 0.3.
    # "high": car 255, background 166. Up to 0.6 all 48 pixels: 2*15/(48+15) = 10/21; at 0.7 (179)
    # only the car: Dice 1. Best 0.7.
    # Ensemble sum: car 90 + 255 = 345, background 166. At 0.3 (153) all: 10/21; at 0.4, 0.5 and 0.6
    # (204, 255, 306) only the car: 1; at 0.7 (357) nothing: 0. Best 0.4..0.6, the tie goes to 0.5.
    low = TRUTH * 90
    high = TRUTH * 255 + (1 - TRUTH) * 166
    paths = _oof_set(tmp_path, {"low": low, "high": high})
    tune(paths, ["low", "high"], ThresholdGrid(0.3, 0.7, 0.1))
    written = json.loads((paths.out_dir / "thresholds.json").read_text())
    assert written["threshold"] == 0.5
    assert written["ensemble"] == {"threshold": 0.5, "dice": 1.0}
    assert written["models"] == {
        "low": {"threshold": 0.3, "dice": 1.0},
        "high": {"threshold": 0.7, "dice": 1.0},
    }
    scores = pd.read_csv(paths.out_dir / "oof_scores.csv").set_index(["model", "fold"])
    assert scores.loc[("low", "all"), "dice_at_0.5"] == 0.0
    assert scores.loc[("high", "all"), "dice_at_0.5"] == pytest.approx(10 / 21, abs=1e-6)
    assert scores.loc[(ENSEMBLE, "all"), "dice_at_0.5"] == 1.0


def test_tune_reads_an_image_without_a_car_from_the_masks_table(tmp_path: Path) -> None:
    # one image's mask is empty (its rle_mask cell is empty) and its map all background: Dice 1
    # at every threshold, like the three images whose maps are exactly their masks
    paths = _oof_set(tmp_path, {"m": TRUTH * 255})
    masks = pd.read_csv(paths.data_dir / "train_masks.csv")
    masks.loc[masks["img"] == "bbbbbbbbbbbb_02.jpg", "rle_mask"] = ""
    masks.to_csv(paths.data_dir / "train_masks.csv", index=False)
    for folder in ("oof", "oof_plain"):
        cv2.imwrite(str(paths.models_dir / f"m/fold1/{folder}/bbbbbbbbbbbb_02.png"), np.zeros_like(TRUTH))
    assert ",\n" in (paths.data_dir / "train_masks.csv").read_text()  # the empty cell, as Kaggle writes it
    result = tune(paths, ["m"], ThresholdGrid(0.3, 0.7, 0.1))
    assert result["models"]["m"] == {"threshold": 0.5, "dice": 1.0}


def test_a_missing_oof_map_names_the_job_to_rerun(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "train_masks.csv").write_text("img,rle_mask\naaaaaaaaaaaa_01.jpg,1 2\n")
    folds_path = tmp_path / "folds.csv"
    folds_path.write_text("img,car_id,fold\naaaaaaaaaaaa_01.jpg,aaaaaaaaaaaa,0\n")
    paths = TunePaths(data_dir, folds_path, tmp_path / "models", tmp_path / "out")
    with pytest.raises(
        FileNotFoundError, match=r"m/fold0/oof/aaaaaaaaaaaa_01\.png: missing .*rerun that job's OOF maps"
    ):
        tune(paths, ["m"], ThresholdGrid())
