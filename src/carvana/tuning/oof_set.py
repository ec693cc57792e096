"""The out-of-fold set that tuning reads: the stage's paths, the training images with their folds
and true masks, and each model's per-image Dice curves.

Every training image is held out by exactly one fold, so each model has one OOF probability map
per training image, made by the OOF stage (``carvana.prediction.oof``) with the configured TTA
(``<models_dir>/<model>/fold<k>/oof/<img>.png``) and without it (``oof_plain/``). A curve is an
image's Dice at every threshold of the grid and then at 0.5 (``curve_columns``), at the image's
own size against its mask in train_masks.csv. ``ENSEMBLE`` names the blend's curves beside the
models' in every table tuning writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from carvana.layout import DatasetPaths
from carvana.prediction.weights import model_weights
from carvana.tuning.scan import BlendGroup, Images, ScanPlan, oof_path, scan
from carvana.tuning.threshold import ThresholdGrid

ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class TunePaths:
    """Where tuning reads (the dataset's train_masks.csv, folds.csv, each network's OOF maps under
    ``models_dir``) and where it writes (``out_dir``)."""

    data_dir: Path
    folds_path: Path
    models_dir: Path
    out_dir: Path

    def oof_path(self, model: str, fold: int, img: str, folder: str = "oof") -> Path:
        return oof_path(self.models_dir, model, fold, img, folder)


@dataclass(frozen=True)
class OofSet:
    """The training images in name order with their folds, and each model's per-image Dice at
    every threshold: ``tta`` and ``plain`` map a model to (images, thresholds + 1) arrays, the
    last column at threshold 0.5."""

    folds: pd.DataFrame
    columns: npt.NDArray[np.float64]
    tta: dict[str, npt.NDArray[np.float64]]
    plain: dict[str, npt.NDArray[np.float64]]

    @property
    def fold_of_image(self) -> npt.NDArray[np.int64]:
        return self.folds["fold"].to_numpy(dtype=np.int64)


def curve_columns(grid: ThresholdGrid) -> npt.NDArray[np.float64]:
    """The grid's thresholds and then 0.5: every curve's columns."""
    return np.append(grid.values(), 0.5)


def read_truth(paths: TunePaths) -> pd.Series:
    return pd.read_csv(
        DatasetPaths(paths.data_dir).train_masks_csv_path, dtype=str, keep_default_na=False
    ).set_index("img")["rle_mask"]


def read_folds(paths: TunePaths) -> pd.DataFrame:
    return pd.read_csv(paths.folds_path).sort_values("img", ignore_index=True)


def oof_images(paths: TunePaths, folds: pd.DataFrame) -> Images:
    """The images of ``folds`` (in its order) with their folds and true masks."""
    truth = read_truth(paths)
    names = folds["img"].tolist()
    return Images(names, [int(fold) for fold in folds["fold"]], truth.loc[names].tolist())


def oof_dice(
    paths: TunePaths,
    models: list[str],
    grid: ThresholdGrid,
    weights: Mapping[str, float] | None = None,
    threads: int = 1,
) -> tuple[pd.DataFrame, dict[str, npt.NDArray[np.float64]]]:
    """Per-image Dice at each threshold of the grid, with TTA: (the folds table, {member:
    (images, thresholds) array}), the ensemble's under ``weights`` (1 each unless given)."""
    if not models:
        raise ValueError("no models to tune: configure at least one")
    folds, columns = read_folds(paths), curve_columns(grid)
    point = np.array([model_weights(models, weights or {})])
    plan = ScanPlan(paths.models_dir, tuple(models), columns, (BlendGroup(point),))
    result = scan(plan, oof_images(paths, folds), threads)
    width = len(columns) - 1
    curves = {model: curve[:, :width] for model, curve in result.tta.items()}
    curves[ENSEMBLE] = result.blends[0][0, :, :width]
    return folds, curves
