"""Out-of-fold threshold tuning: Dice against threshold per model and for their ensemble.

Every training image is held out by exactly one fold, so each model has one OOF probability map
per training image (``<models_dir>/<model>/fold<k>/oof/<img>.png``). The ensemble's map is the
models' weighted mean (``carvana.prediction.weights``), as prediction averages them. Dice is
computed at the images' own size against the masks of train_masks.csv, for every threshold of
the grid; the ensemble's best threshold is the one prediction uses.

Outputs in ``out_dir``: ``thresholds.json`` (the chosen threshold, and each model's best),
``oof_scores.csv`` (OOF Dice per model and the ensemble, per fold and over all folds, at each
one's best threshold and at 0.5), ``oof_images.csv`` (each image's Dice per model and for the
ensemble, at those thresholds) and ``dice_vs_threshold.png``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pandas as pd

from carvana import rle
from carvana.atomic import atomic_path, write_text
from carvana.layout import DatasetPaths
from carvana.prediction.weights import model_weights
from carvana.tuning.threshold import ThresholdGrid, best_threshold, dice_at_thresholds, value_counts

ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class TunePaths:
    data_dir: Path
    folds_path: Path
    models_dir: Path
    out_dir: Path

    def oof_path(self, model: str, fold: int, img: str) -> Path:
        return oof_path(self.models_dir, model, fold, img)


def oof_path(models_dir: Path, model: str, fold: int, img: str) -> Path:
    """Where a training job wrote its OOF map of ``img``."""
    return models_dir / model / f"fold{fold}" / "oof" / (img.removesuffix(".jpg") + ".png")


def ensemble_scale(models: list[str], weights: Mapping[str, float] | None) -> npt.NDArray[np.float64]:
    """Each model's factor in the ensemble's sum: its weight, scaled so that the factors add up
    to the number of models (all ones when the weights are equal)."""
    weight = np.array(model_weights(models, weights or {}))
    return np.asarray(weight * (len(models) / weight.sum()), dtype=np.float64)


def ensemble_levels(
    maps: list[npt.NDArray[np.uint8]], scale: npt.NDArray[np.float64]
) -> npt.NDArray[np.uint16]:
    """The ensemble's map in steps of 1 / (255 * len(maps)) from the models' uint8 maps: with
    equal weights the exact sum, otherwise the weighted sum rounded to the step."""
    total = np.zeros(maps[0].shape, dtype=np.float64)
    for probability, factor in zip(maps, scale, strict=True):
        total += factor * probability
    return np.rint(total).astype(np.uint16)  # up to 257 models of 255


def read_oof(path: Path) -> npt.NDArray[np.uint8]:
    probability = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if probability is None or probability.dtype != np.uint8 or probability.ndim != 2:
        raise FileNotFoundError(f"{path}: missing or not a uint8 probability map; rerun that training job")
    return np.asarray(probability, dtype=np.uint8)


def oof_dice(
    paths: TunePaths, models: list[str], grid: ThresholdGrid, weights: Mapping[str, float] | None = None
) -> tuple[pd.DataFrame, dict[str, npt.NDArray[np.float64]]]:
    """Per-image Dice at each threshold: (the folds table, {member: (images, thresholds) array}).

    The ensemble's map is held in steps of 1 / (255 * len(models)): with equal weights that is the
    exact sum of the models' uint8 maps; otherwise the weighted mean, rounded to that step.
    """
    if not models:
        raise ValueError("no models to tune: configure at least one")
    scale = ensemble_scale(models, weights)
    folds = pd.read_csv(paths.folds_path).sort_values("img", ignore_index=True)
    truth_rle = pd.read_csv(
        DatasetPaths(paths.data_dir).train_masks_csv_path, dtype=str, keep_default_na=False
    ).set_index("img")["rle_mask"]
    thresholds = grid.values()
    members = [*models, ENSEMBLE]
    curves = {member: np.empty((len(folds), len(thresholds))) for member in members}
    for row, (img, fold) in enumerate(zip(folds["img"], folds["fold"], strict=True)):
        maps = [read_oof(paths.oof_path(model, int(fold), img)) for model in models]
        truth = rle.decode(truth_rle[img], maps[0].shape)
        for model, probability in zip(models, maps, strict=True):
            if probability.shape != truth.shape:
                raise ValueError(f"{model}'s OOF map of {img} is {probability.shape}, its mask {truth.shape}")
            curves[model][row] = dice_at_thresholds(*value_counts(probability, truth, 255), thresholds)
        levels = ensemble_levels(maps, scale)
        counts = value_counts(levels, truth, 255 * len(models))
        curves[ENSEMBLE][row] = dice_at_thresholds(*counts, thresholds)
    return folds, curves


def tune(
    paths: TunePaths, models: list[str], grid: ThresholdGrid, weights: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Write thresholds.json, oof_scores.csv and dice_vs_threshold.png; return thresholds.json's content."""
    folds, curves = oof_dice(paths, models, grid, weights)
    thresholds = grid.values()
    at_half = int(np.argmin(np.abs(thresholds - 0.5))) if grid.start <= 0.5 <= grid.stop else None
    chosen: dict[str, dict[str, float]] = {}
    rows = []
    per_image = folds[["img", "car_id", "fold"]].copy()
    for member, curve in curves.items():
        threshold, dice = best_threshold(thresholds, curve.mean(axis=0))
        chosen[member] = {"threshold": threshold, "dice": dice}
        column = int(np.argmin(np.abs(thresholds - threshold)))
        per_image[member] = curve[:, column]
        groups = [("all", np.ones(len(folds), dtype=bool))]
        groups += [(str(fold), (folds["fold"] == fold).to_numpy()) for fold in sorted(folds["fold"].unique())]
        for fold, rows_of in groups:
            rows.append(
                {
                    "model": member,
                    "fold": fold,
                    "images": int(rows_of.sum()),
                    "threshold": threshold,
                    "dice": curve[rows_of, column].mean(),
                    "dice_at_0.5": curve[rows_of, at_half].mean() if at_half is not None else np.nan,
                }
            )
    result = {
        "threshold": chosen[ENSEMBLE]["threshold"],
        "ensemble": chosen[ENSEMBLE],
        "models": {model: chosen[model] for model in models},
        "weights": dict(zip(models, model_weights(models, weights or {}), strict=True)),
        "grid": {"start": grid.start, "stop": grid.stop, "step": grid.step},
        "images": len(folds),
    }
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths.out_dir / "oof_scores.csv") as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False, float_format="%.6f")
    with atomic_path(paths.out_dir / "oof_images.csv") as temporary:
        per_image.to_csv(temporary, index=False, float_format="%.6f")
    plot_curves(
        thresholds,
        {member: curve.mean(axis=0) for member, curve in curves.items()},
        chosen,
        paths.out_dir / "dice_vs_threshold.png",
    )
    write_text(paths.out_dir / "thresholds.json", json.dumps(result, indent=2) + "\n")
    return result


def plot_curves(
    thresholds: npt.NDArray[np.float64],
    mean_dice: dict[str, npt.NDArray[np.float64]],
    chosen: dict[str, dict[str, float]],
    path: Path,
) -> None:
    """Mean OOF Dice against threshold, one line per model and a bold one for the ensemble."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for member, curve in mean_dice.items():
        bold = member == ENSEMBLE
        axes.plot(
            thresholds,
            curve,
            linewidth=2.5 if bold else 1.2,
            color="black" if bold else None,
            label=f"{member}: {chosen[member]['dice']:.4f} at {chosen[member]['threshold']:.2f}",
        )
    axes.axvline(chosen[ENSEMBLE]["threshold"], color="black", linestyle=":", linewidth=1)
    axes.set_xlabel("threshold")
    axes.set_ylabel("mean OOF Dice")
    axes.set_title("Out-of-fold Dice against threshold")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower center", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
