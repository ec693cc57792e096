"""The choice: the ensemble's weights and threshold, and each model's threshold, from the OOF
curves.

One pass over the maps (``carvana.tuning.scan``) scores every model alone and every blend the
choice may take: equal weights, the given ones (1 each unless given) and the simplex grid of the
search (``carvana.tuning.blend``). Networks that learnt nothing are flagged
(``carvana.tuning.flags``); the search runs over the models with a network left, and the images of
a fold whose network is left out are scored again without it. With ``auto`` the search's blend
is the ensemble; otherwise the given weights are, at their own best threshold. What the choice
made goes to ``carvana.tuning.outputs`` as a ``Tuning``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carvana import schema
from carvana.prediction.weights import job_name, model_weights
from carvana.tuning.blend import choose_blend, simplex_grid
from carvana.tuning.flags import FlagRule, flag_jobs
from carvana.tuning.oof_set import ENSEMBLE, OofSet, TunePaths, curve_columns, oof_images, read_folds
from carvana.tuning.scan import BlendGroup, Images, ScanPlan, scan
from carvana.tuning.threshold import ThresholdGrid, best_threshold


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


def best_column(curve: npt.NDArray[np.float64], thresholds: npt.NDArray[np.float64]) -> int:
    """The column of ``thresholds`` where the mean of ``curve`` (images, columns) is best."""
    threshold, _ = best_threshold(thresholds, curve[:, : len(thresholds)].mean(axis=0))
    return int(np.argmin(np.abs(thresholds - threshold)))


@dataclass(frozen=True)
class Tuning:
    """What the choice made and what it was made on. ``members`` holds each model at its best
    threshold and then ``ENSEMBLE``, the final recipe; ``search`` is the searched blend and
    ``equal`` the equal-weight one, each at its best threshold. ``flagged`` maps a (model, fold)
    to why it was flagged; ``problem`` says which folds had every network flagged, if any;
    ``left_out`` names the networks the search blends without. ``searched_curves`` (points,
    images, columns) are the searched blends' curves at ``grid_points`` (points, models)."""

    models: list[str]
    oof: OofSet
    thresholds: npt.NDArray[np.float64]
    auto: bool
    flagged: dict[tuple[str, int], str]
    problem: str | None
    left_out: set[str]
    grid_points: npt.NDArray[np.float64]
    searched_curves: npt.NDArray[np.float64]
    members: dict[str, Tuned]
    search: Tuned
    equal: Tuned

    @property
    def folds(self) -> npt.NDArray[np.int64]:
        """Each image's fold: (images,) int64."""
        return self.oof.fold_of_image

    @property
    def fold_ids(self) -> list[int]:
        return sorted(int(f) for f in np.unique(self.folds))


def choose(
    paths: TunePaths,
    models: list[str],
    grid: ThresholdGrid,
    weights: Mapping[str, float] | None = None,
    *,
    auto: bool = False,
    weight_step: float = schema.default("ensemble.weight_step"),
    flag: FlagRule | None = None,
    threads: int = 1,
) -> Tuning:
    """Choose the ensemble's weights (``weights``, 1 each unless given; or with ``auto`` the
    search) and threshold, and each model's threshold. The maps are read by ``threads``
    processes (``scan``)."""
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
    problem = None
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
        final = Tuned(final_weights, best_column(given[0], thresholds), given[0])
    equal_tuned = Tuned(dict.fromkeys(models, 1.0), best_column(equal[0], thresholds), equal[0])
    members = {
        model: Tuned({model: 1.0}, best_column(oof.tta[model], thresholds), oof.tta[model])
        for model in models
    }
    members[ENSEMBLE] = final
    return Tuning(
        models,
        oof,
        thresholds,
        auto,
        flagged,
        problem,
        left_out,
        grid_points,
        searched_curves,
        members,
        search,
        equal_tuned,
    )


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
