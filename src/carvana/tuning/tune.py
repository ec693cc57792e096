"""Out-of-fold tuning, the stage: the ensemble's weights and threshold, and what each step of it
buys.

Every training image is held out by exactly one fold, so each model has one OOF probability map
per training image, with TTA and without (``carvana.tuning.oof_set``). The ensemble's map is the
models' weighted mean, as prediction averages them. Dice is computed at the images' own size
against the masks of train_masks.csv, at every threshold of the grid.

1. Each network's OOF Dice at 0.5 is checked (``carvana.tuning.flags``): one that learnt nothing
   is flagged, and warned about.
2. The weights: the configured ones, or with ``auto`` the simplex-grid search over the networks
   not flagged (``carvana.tuning.blend``), weights and threshold together.
3. The threshold prediction uses: the ensemble's best under those weights.

The choice is ``carvana.tuning.choice``; the files it leaves in ``out_dir`` (thresholds.json,
which prediction reads, the OOF score tables, the ablation and the plot) are written by
``carvana.tuning.outputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carvana import schema
from carvana.tuning.choice import choose
from carvana.tuning.flags import FlagRule
from carvana.tuning.oof_set import TunePaths
from carvana.tuning.outputs import write_outputs
from carvana.tuning.threshold import ThresholdGrid

__all__ = ["TunePaths", "tune"]  # TunePaths: the stage's paths, given with tune's arguments


def tune(
    paths: TunePaths,
    models: list[str],
    grid: ThresholdGrid,
    weights: Mapping[str, float] | None = None,
    *,
    auto: bool = False,
    weight_step: float = schema.default("ensemble.weight_step"),
    flag: FlagRule | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Choose the ensemble's weights (``weights``, 1 each unless given; or with ``auto`` the
    search) and threshold; write thresholds.json, the tables and the plot; return
    thresholds.json's content. The maps are read by ``threads`` processes (``scan``)."""
    tuning = choose(
        paths, models, grid, weights, auto=auto, weight_step=weight_step, flag=flag, threads=threads
    )
    return write_outputs(tuning, grid, weight_step, paths.out_dir)
