"""Threshold tuning: exact Dice at every threshold, the brute-force best, and the stage's files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from carvana import rle
from carvana.metrics import dice
from carvana.tuning.threshold import ThresholdGrid, best_threshold, dice_at_thresholds, value_counts
from carvana.tuning.tune import ENSEMBLE, TunePaths, oof_dice, tune


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


def test_ties_go_to_the_threshold_nearest_one_half() -> None:
    thresholds = np.array([0.3, 0.4, 0.5, 0.6])
    assert best_threshold(thresholds, np.array([0.9, 0.95, 0.95, 0.95]))[0] == 0.5
    assert best_threshold(thresholds, np.array([0.95, 0.95, 0.9, 0.9]))[0] == 0.4


@pytest.mark.parametrize(
    ("start", "stop", "step"), [(0.0, 0.7, 0.01), (0.3, 1.0, 0.01), (0.6, 0.4, 0.01), (0.3, 0.7, 0)]
)
def test_a_grid_outside_zero_one_is_rejected(start: float, stop: float, step: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        ThresholdGrid(start, stop, step)


def _oof_set(tmp_path: Path, maps: dict[str, np.ndarray]) -> TunePaths:
    """Four images, two cars, one per fold, all with the mask ``TRUTH``; each model's OOF map of
    every image is ``maps[model]``."""
    data_dir, models_dir = tmp_path / "data", tmp_path / "models"
    data_dir.mkdir()
    images = {
        "aaaaaaaaaaaa_01.jpg": 0,
        "aaaaaaaaaaaa_02.jpg": 0,
        "bbbbbbbbbbbb_01.jpg": 1,
        "bbbbbbbbbbbb_02.jpg": 1,
    }
    pd.DataFrame({"img": list(images), "rle_mask": [rle.encode(TRUTH)] * 4}).to_csv(
        data_dir / "train_masks.csv", index=False
    )
    folds_path = tmp_path / "folds.csv"
    pd.DataFrame(
        {"img": list(images), "car_id": [i[:12] for i in images], "fold": list(images.values())}
    ).to_csv(folds_path, index=False)
    for model, probability in maps.items():
        for img, fold in images.items():
            folder = models_dir / model / f"fold{fold}" / "oof"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / img.replace(".jpg", ".png")), probability.astype(np.uint8))
    return TunePaths(data_dir, folds_path, models_dir, tmp_path / "tuning")


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


def test_a_missing_oof_map_names_the_job_to_rerun(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "train_masks.csv").write_text("img,rle_mask\naaaaaaaaaaaa_01.jpg,1 2\n")
    folds_path = tmp_path / "folds.csv"
    folds_path.write_text("img,car_id,fold\naaaaaaaaaaaa_01.jpg,aaaaaaaaaaaa,0\n")
    paths = TunePaths(data_dir, folds_path, tmp_path / "models", tmp_path / "out")
    with pytest.raises(
        FileNotFoundError, match=r"m/fold0/oof/aaaaaaaaaaaa_01\.png: missing .*rerun that training job"
    ):
        tune(paths, ["m"], ThresholdGrid())
