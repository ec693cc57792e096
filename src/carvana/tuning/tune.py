"""Out-of-fold tuning: the ensemble's weights and threshold, and what each step of it buys.

Every training image is held out by exactly one fold, so each model has one OOF probability map
per training image, made by the OOF stage (``carvana.prediction.oof``) with the configured TTA
(``<models_dir>/<model>/fold<k>/oof/<img>.png``) and without it (``oof_plain/``). The ensemble's
map is the models' weighted mean, as prediction averages them. Dice is computed at the images'
own size against the masks of train_masks.csv, at every threshold of the grid.

1. Each network's OOF Dice at 0.5 is checked (``carvana.tuning.flags``): one that learnt nothing
   is flagged, and warned about.
2. The weights: the configured ones, or with ``auto`` the simplex-grid search over the networks
   not flagged (``carvana.tuning.blend``), weights and threshold together.
3. The threshold prediction uses: the ensemble's best under those weights.

Outputs in ``out_dir``: ``thresholds.json`` (the threshold, the weights and the networks left
out, which prediction reads; each model's best threshold; the flags and warnings),
``oof_scores.csv`` (OOF Dice per model and the ensemble, per fold and over all folds, at each
one's best threshold and at 0.5), ``oof_images.csv`` (each image's Dice per model and for the
ensemble, at those thresholds), ``ablation.csv`` (``carvana.tuning.ablation``) and
``dice_vs_threshold.png``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from carvana.atomic import atomic_path, write_text
from carvana.layout import DatasetPaths
from carvana.prediction.weights import job_name, model_weights
from carvana.tuning.ablation import Step, ablation_table
from carvana.tuning.blend import Choice, blend_scales, choose_blend, nested_choice, simplex_grid
from carvana.tuning.flags import FlagRule, edge_warnings, flag_jobs
from carvana.tuning.plot import plot_curves
from carvana.tuning.scan import BlendGroup, Images, ScanPlan, oof_path, scan
from carvana.tuning.threshold import ThresholdGrid, best_threshold

ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class TunePaths:
    data_dir: Path
    folds_path: Path
    models_dir: Path
    out_dir: Path

    def oof_path(self, model: str, fold: int, img: str, folder: str = "oof") -> Path:
        return oof_path(self.models_dir, model, fold, img, folder)


def ensemble_levels(
    maps: list[npt.NDArray[np.uint8]], scale: npt.NDArray[np.float64]
) -> npt.NDArray[np.uint16]:
    """The ensemble's map in steps of 1 / (255 * len(maps)) from the models' uint8 maps: with
    equal weights the exact sum, otherwise the weighted sum rounded to the step."""
    total = np.zeros(maps[0].shape, dtype=np.float64)
    for probability, factor in zip(maps, scale, strict=True):
        total += factor * probability
    return np.rint(total).astype(np.uint16)  # up to 257 models of 255


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


@dataclass(frozen=True)
class Tuned:
    """One way of blending, chosen: its weights per model, threshold column and curves."""

    weights: dict[str, float]
    column: int
    curve: npt.NDArray[np.float64]  # (images, columns)

    def at_tuned(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.curve[:, self.column])

    def at_half(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.curve[:, -1])


def _best(curve: npt.NDArray[np.float64], thresholds: npt.NDArray[np.float64]) -> int:
    threshold, _ = best_threshold(thresholds, curve[:, : len(thresholds)].mean(axis=0))
    return int(np.argmin(np.abs(thresholds - threshold)))


def _describe(weights: Mapping[str, float]) -> str:
    return " ".join(f"{model}={weight:g}" for model, weight in weights.items())


def tune(
    paths: TunePaths,
    models: list[str],
    grid: ThresholdGrid,
    weights: Mapping[str, float] | None = None,
    *,
    auto: bool = False,
    weight_step: float = 0.1,
    flag: FlagRule | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Choose the ensemble's weights (``weights``, 1 each unless given; or with ``auto`` the
    search) and threshold; write thresholds.json, the tables and the plot; return
    thresholds.json's content. The maps are read by ``threads`` processes (``scan``)."""
    if auto and weights:
        raise ValueError("ensemble weights are either auto or given, not both")
    if not models:
        raise ValueError("no models to tune: configure at least one")
    folds_table, columns = read_folds(paths), curve_columns(grid)
    images = oof_images(paths, folds_table)
    thresholds, folds = grid.values(), folds_table["fold"].to_numpy(dtype=np.int64)
    # One pass over the maps: every model's curves, and the blends with every network in them;
    # equal weights and the given ones (or 1 each) are scored as they are, flags or not.
    every_point = simplex_grid(len(models), weight_step)
    equal_point = np.full((1, len(models)), 1 / len(models))
    given_point = np.array([model_weights(models, weights or {})])
    blends = (BlendGroup(equal_point), BlendGroup(given_point), BlendGroup(every_point))
    first = scan(ScanPlan(paths.models_dir, tuple(models), columns, blends), images, threads)
    oof = OofSet(folds_table, columns, first.tta, first.plain)
    equal, given, every_blend = first.blends
    fold_ids = sorted(int(f) for f in np.unique(folds))
    job_dice = {
        (model, fold): float(oof.tta[model][folds == fold, -1].mean())
        for model in models
        for fold in fold_ids
    }
    flagged = flag_jobs(job_dice, flag or FlagRule())
    emptied = [fold for fold in fold_ids if all((model, fold) in flagged for model in models)]
    if emptied:
        # nothing of those folds would be left to blend: the search keeps every network
        problem = (
            f"every model's network of fold {', '.join(map(str, emptied))} is flagged as having learnt "
            "nothing: retrain them (more epochs, another learning rate) before trusting this ensemble"
        )
        if auto:
            raise ValueError(problem)
    left_out = {job_name(model, fold) for model, fold in flagged} if not emptied else set()
    searched = [model for model in models if any(job_name(model, fold) not in left_out for fold in fold_ids)]
    sub = simplex_grid(len(searched), weight_step)
    grid_points = np.zeros((len(sub), len(models)))
    grid_points[:, [models.index(model) for model in searched]] = sub
    searched_curves = _searched_blends(
        paths, models, images, columns, threads, every_point, every_blend, grid_points, left_out, flagged
    )
    choice = choose_blend(searched_curves[:, :, : len(thresholds)], grid_points, thresholds)
    search = Tuned(
        dict(zip(models, grid_points[choice.point].tolist(), strict=True)),
        choice.threshold,
        searched_curves[choice.point],
    )
    if auto:
        final = search
    else:
        final_weights = dict(zip(models, given_point[0].tolist(), strict=True))
        final = Tuned(final_weights, _best(given[0], thresholds), given[0])
    equal_tuned = Tuned(dict.fromkeys(models, 1.0), _best(equal[0], thresholds), equal[0])

    chosen: dict[str, dict[str, float]] = {}
    per_image = oof.folds[["img", "car_id", "fold"]].copy()
    members = {
        model: Tuned({model: 1.0}, _best(oof.tta[model], thresholds), oof.tta[model]) for model in models
    }
    members[ENSEMBLE] = final
    rows = []
    for member, tuned in members.items():
        threshold = float(thresholds[tuned.column])
        chosen[member] = {"threshold": threshold, "dice": float(tuned.at_tuned().mean())}
        per_image[member] = tuned.at_tuned()
        groups = [("all", np.ones(len(folds), dtype=bool))] + [(str(f), folds == f) for f in fold_ids]
        for fold_label, rows_of in groups:
            rows.append(
                {
                    "model": member,
                    "fold": fold_label,
                    "images": int(rows_of.sum()),
                    "threshold": threshold,
                    "dice": tuned.at_tuned()[rows_of].mean(),
                    "dice_at_0.5": tuned.at_half()[rows_of].mean(),
                }
            )

    best_single = max(models, key=lambda model: chosen[model]["dice"])
    steps = []
    for model in models:
        plain = Tuned({model: 1.0}, _best(oof.plain[model], thresholds), oof.plain[model])
        steps.append(_step(f"{model} without TTA", plain, thresholds, None))
        steps.append(_step(f"{model} with TTA", members[model], thresholds, f"{model} without TTA"))
    steps.append(_step("equal-weight ensemble", equal_tuned, thresholds, f"{best_single} with TTA"))
    steps.append(_step("tuned-weight ensemble", search, thresholds, "equal-weight ensemble"))
    if len(fold_ids) > 1:  # the search's gain as a new image meets it
        nested_tuned, nested_half, nested = nested_choice(
            searched_curves[:, :, : len(thresholds)],
            searched_curves[:, :, -1],
            grid_points,
            thresholds,
            folds,
        )
        by_fold = [f"fold {f}: {_describe(_weights_of(models, grid_points, c))}" for f, c in nested.items()]
        steps.append(
            Step(
                "tuned weights, chosen on the other folds",
                nested_tuned,
                nested_half,
                None,
                "equal-weight ensemble",
                "; ".join(by_fold),
            )
        )
    steps.append(_step("final recipe", final, thresholds, f"{best_single} with TTA"))
    ablation = ablation_table(steps, folds)

    warnings = [
        f"{job_name(model, fold)}: {reason}; "
        + (
            "left out of the ensemble (ensemble.weights: auto)"
            if auto
            else "blended in all the same, as ensemble.weights are given: retrain it, or set "
            "ensemble.weights: auto to leave it out"
        )
        for (model, fold), reason in flagged.items()
    ]
    warnings += [problem] if emptied else []
    warnings += edge_warnings({m: chosen[m]["threshold"] for m in chosen}, thresholds[0], thresholds[-1])
    result = {
        "threshold": chosen[ENSEMBLE]["threshold"],
        "ensemble": chosen[ENSEMBLE],
        "models": {model: chosen[model] for model in models},
        "weights": final.weights,
        "weights_chosen": "auto" if auto else "config",
        "left_out": sorted(left_out) if auto else [],
        "flagged": {job_name(model, fold): reason for (model, fold), reason in flagged.items()},
        "warnings": warnings,
        "grid": {"start": grid.start, "stop": grid.stop, "step": grid.step},
        "weight_step": weight_step,
        "images": len(folds),
    }
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths.out_dir / "oof_scores.csv") as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False, float_format="%.6f")
    with atomic_path(paths.out_dir / "oof_images.csv") as temporary:
        per_image.to_csv(temporary, index=False, float_format="%.6f")
    with atomic_path(paths.out_dir / "ablation.csv") as temporary:
        ablation.to_csv(temporary, index=False, float_format="%.6f")
    plot_curves(
        thresholds,
        {member: tuned.curve[:, : len(thresholds)].mean(axis=0) for member, tuned in members.items()},
        chosen,
        ENSEMBLE,
        paths.out_dir / "dice_vs_threshold.png",
    )
    write_text(paths.out_dir / "thresholds.json", json.dumps(result, indent=2) + "\n")
    return result


def _searched_blends(
    paths: TunePaths,
    models: list[str],
    images: Images,
    columns: npt.NDArray[np.float64],
    threads: int,
    every_point: npt.NDArray[np.float64],
    every_blend: npt.NDArray[np.float64],
    grid_points: npt.NDArray[np.float64],
    left_out: set[str],
    flagged: Mapping[tuple[str, int], str],
) -> npt.NDArray[np.float64]:
    """The searched blends' curves (points, images, columns), networks left out: the rows of the
    first pass's ``every_blend`` that are ``grid_points``, and the images of a fold whose network
    of a searched model is left out scored again without it. (A model with every network left out
    weighs 0 in every searched blend, which then equals the blend without it.)"""
    row_of = {tuple(point): row for row, point in enumerate(every_point.tolist())}
    rows = [row_of[tuple(point)] for point in grid_points.tolist()]
    curves = every_blend if rows == list(range(len(every_point))) else every_blend[rows]
    searched = {model for model, weight in zip(models, grid_points.T, strict=True) if weight.any()}
    refold = {fold for model, fold in flagged if model in searched and job_name(model, fold) in left_out}
    again = [row for row, fold in enumerate(images.folds) if fold in refold]
    if again:
        subset = Images(
            [images.names[row] for row in again],
            [images.folds[row] for row in again],
            [images.truth_rle[row] for row in again],
        )
        group = BlendGroup(grid_points, frozenset(left_out))
        plan = ScanPlan(paths.models_dir, tuple(models), columns, (group,), curves=False)
        curves[:, again] = scan(plan, subset, threads).blends[0]
    return curves


def _weights_of(models: list[str], points: npt.NDArray[np.float64], choice: Choice) -> dict[str, float]:
    return dict(zip(models, points[choice.point].tolist(), strict=True))


def _step(name: str, tuned: Tuned, thresholds: npt.NDArray[np.float64], compared_with: str | None) -> Step:
    weights = _describe(tuned.weights) if len(tuned.weights) > 1 else ""
    return Step(
        name, tuned.at_tuned(), tuned.at_half(), float(thresholds[tuned.column]), compared_with, weights
    )


def image_levels(
    maps: list[npt.NDArray[np.uint8] | None], weights: list[float]
) -> tuple[npt.NDArray[np.uint16], int]:
    """One image's ensemble map in levels, as tuning scores it: the present maps (None: a network
    left out) blended by ``weights``; returns the levels and their scale (255 x models)."""
    present = np.array([probability is not None for probability in maps])
    (scale,) = blend_scales(np.array([weights], dtype=np.float64), present)
    if np.isnan(scale).any():
        raise ValueError("every network with a weight is left out of this image's blend")
    levels = ensemble_levels([m for m in maps if m is not None], scale)
    return levels, 255 * len(maps)
