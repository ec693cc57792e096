"""Ensemble weights chosen on the out-of-fold maps, together with the threshold.

The search is a coarse simplex grid: every weight vector whose entries are multiples of ``step``
and add up to 1 (66 vectors for three models at step 0.1, a model's weight 0 leaving it out),
each scored at every threshold of the tuning grid by mean OOF Dice over all training images.
The best (weights, threshold) pair wins; among pairs within 1e-12 of it, the weights nearest the
equal weights, then the threshold nearest 0.5.

Why this does not overfit the OOF set: the choice is among a few dozen weight vectors and a few
dozen thresholds, scored on thousands of images (5,088 in the competition), and each image's
Dice is out of fold for every network in it. The search's own gain is measured honestly too:
``nested_choice`` picks the weights and threshold on all folds but one and scores them on the
fold left out, fold by fold, so the ablation table shows the gain a new image can expect beside
the gain on the images the weights were chosen on, with its fold-to-fold spread. When the
nested gain is within that spread, equal weights are as good.

Each image's ensemble map is held in levels of 1 / (255 x models), as tuning scores it
(``ensemble_levels``; ``image_levels`` draws one image's map so, for the report). A network left
out (a model's fold that learnt nothing) is missing from the maps of its fold's images; the
remaining models' weights are scaled up to fill its share there, as prediction's weighted mean
does over the networks it has. Pixels where every present map has the same value have that
value in every blend, so each blend only recomputes the others (the edges of the car, a few
percent of the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from carvana.tuning.threshold import dice_at_thresholds

FloatArray = npt.NDArray[np.float64]


MAX_BLENDS = 5000  # a finer grid than this overfits the OOF set and takes long to score


def simplex_grid(models: int, step: float) -> FloatArray:
    """Every weight vector of ``models`` entries in multiples of ``step`` adding up to 1:
    (points, models) float64, in lexicographic order of the entries, largest first."""
    if models < 1:
        raise ValueError(f"a weight grid needs at least one model, got {models}")
    parts = round(1 / step) if step > 0 else 0
    if parts < 1 or abs(parts * step - 1) > 1e-9:
        raise ValueError(f"the weight step must divide 1 (0.5, 0.25, 0.2, 0.1, ...), got {step}")
    count = math.comb(parts + models - 1, models - 1)
    if count > MAX_BLENDS:
        raise ValueError(
            f"a weight step of {step} gives {count} blends of {models} models, more than {MAX_BLENDS}: "
            "raise the step"
        )

    def compositions(total: int, slots: int) -> list[tuple[int, ...]]:
        if slots == 1:
            return [(total,)]
        return [
            (first, *rest)
            for first in range(total, -1, -1)
            for rest in compositions(total - first, slots - 1)
        ]

    return np.array(compositions(parts, models), dtype=np.float64) / parts


def blend_scales(points: FloatArray, present: npt.NDArray[np.bool_]) -> FloatArray:
    """Each blend's factor per present model, scaled so that the factors add up to the number of
    models: (points, present models). A row whose present weights are all 0 is NaN (that blend
    has no network for this image)."""
    weights = points[:, present]
    totals = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scales: FloatArray = weights * (points.shape[1] / totals)
    scales[totals[:, 0] == 0] = np.nan
    return scales


def ensemble_levels(
    maps: list[npt.NDArray[np.uint8]], scale: npt.NDArray[np.float64]
) -> npt.NDArray[np.uint16]:
    """The ensemble's map in steps of 1 / (255 * len(maps)) from the models' uint8 maps: with
    equal weights the exact sum, otherwise the weighted sum rounded to the step."""
    total = np.zeros(maps[0].shape, dtype=np.float64)
    for probability, factor in zip(maps, scale, strict=True):
        total += factor * probability
    return np.rint(total).astype(np.uint16)  # up to 257 models of 255


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


def blend_curves(
    maps: list[npt.NDArray[np.uint8] | None],
    truth: npt.NDArray[np.generic],
    points: FloatArray,
    thresholds: FloatArray,
) -> FloatArray:
    """Dice of one image at each threshold for each blend: (points, thresholds) float64.

    ``maps``: each model's OOF map of the image, (H, W) uint8 (p x 255), or None where that
    model's network for the image's fold is left out; ``truth``: (H, W), nonzero for car;
    ``points``: (points, models) weights. A blend with no present weight scores NaN.
    """
    present = np.array([probability is not None for probability in maps])
    if not present.any():
        raise ValueError("every model's map of this image is left out: nothing to blend")
    models = len(maps)
    flat: list[npt.NDArray[np.uint8]] = [p.ravel() for p in maps if p is not None]
    car = truth.ravel() != 0
    if any(values.size != car.size for values in flat):
        raise ValueError(f"the maps have {[values.size for values in flat]} pixels, the mask {car.size}")
    same = np.ones(car.size, dtype=bool)
    for values in flat[1:]:  # a map at a time: no (maps, pixels) copy
        same &= values == flat[0]
    scale = 255 * models
    # Each pixel is counted at its level, a car pixel at scale + 1 more: one bincount gives the car
    # and background counts together (``value_counts``, without its checks: the levels of uint8
    # maps lie in [0, scale] by construction). The smallest integers that hold 2 * (scale + 1)
    # levels keep an image's arrays small.
    dtype = np.uint16 if 2 * (scale + 1) <= 2**16 else np.uint32
    offset = car.astype(dtype) * dtype(scale + 1)
    # where the present maps agree, every blend's level is the models' count times that value
    agreed, agreed_offset = (flat[0], offset) if same.all() else (flat[0][same], offset[same])
    base = _level_counts(agreed.astype(dtype) * models, agreed_offset, scale)
    differ = np.stack([values[~same] for values in flat]).astype(np.float64)
    differ_offset = offset[~same].astype(
        np.intp
    )  # the blends' levels: a float64's rint casts fastest to intp
    curves = np.full((len(points), len(thresholds)), np.nan)
    total = np.empty(differ.shape[1], dtype=np.float64)
    product = np.empty_like(total)
    for row, factors in enumerate(blend_scales(points, present)):
        if np.isnan(factors).any():
            continue
        # the order ensemble_levels sums in: 0 + f0 v0 + f1 v1 + ..., each product rounded alone
        total.fill(0.0)
        for factor, values in zip(factors, differ, strict=True):
            total += np.multiply(values, factor, out=product)
        counts = base + _level_counts(np.rint(total, out=total).astype(np.intp), differ_offset, scale)
        curves[row] = dice_at_thresholds(counts[scale + 1 :], counts[: scale + 1], thresholds)
    return curves


def _level_counts(levels: npt.NDArray[Any], offset: npt.NDArray[Any], scale: int) -> npt.NDArray[np.int64]:
    """Pixels at each level, background then car: (2 * (scale + 1),) int64. ``levels`` (pixels,)
    in [0, scale] is added to in place by ``offset``: scale + 1 for a car pixel, else 0."""
    levels += offset
    return counted(levels, 2 * (scale + 1))


COUNT_BLOCK = 1 << 18  # bincount copies its input to 8-byte integers: a block at a time, 2 MiB


def counted(values: npt.NDArray[np.integer], bins: int) -> npt.NDArray[np.int64]:
    """``np.bincount(values, minlength=bins)`` as int64, a block of values at a time, so that a
    full-size image's count takes a few MiB, not 20."""
    counts = np.zeros(bins, dtype=np.int64)
    for start in range(0, values.size, COUNT_BLOCK):
        counts += np.bincount(values[start : start + COUNT_BLOCK], minlength=bins)
    return counts


@dataclass(frozen=True)
class Choice:
    """A blend and threshold: the index of the weights in the grid, the threshold's index, and
    the mean Dice over the images it was chosen on."""

    point: int
    threshold: int
    dice: float


def choose_blend(curves: FloatArray, points: FloatArray, thresholds: FloatArray) -> Choice:
    """The (weights, threshold) of highest mean Dice over the images of ``curves`` (points,
    images, thresholds); ties go to the weights nearest equal weights, then the threshold
    nearest 0.5. Blends that leave some image without a network (NaN) are not chosen."""
    if curves.shape[1] == 0:
        raise ValueError("no images to choose the ensemble's weights on")
    return choose_by_mean(curves.mean(axis=1), points, thresholds)  # NaN where an image has none


def choose_by_mean(mean: FloatArray, points: FloatArray, thresholds: FloatArray) -> Choice:
    """``choose_blend`` from each blend's mean Dice over the images, (points, thresholds), NaN
    for a blend that leaves some image without a network."""
    if np.isnan(mean).all():
        raise ValueError("every blend of the weight grid leaves some image without a network")
    best = np.nanmax(mean)
    tied = np.argwhere(mean >= best - 1e-12)
    equal = np.full(points.shape[1], 1 / points.shape[1])
    distance = np.abs(points[tied[:, 0]] - equal).sum(axis=1)
    order = np.lexsort((np.abs(thresholds[tied[:, 1]] - 0.5), distance))
    point, threshold = tied[order[0]]
    return Choice(int(point), int(threshold), float(mean[point, threshold]))


FOLD_BLOCK = 256  # images summed at a time: a (points, block, thresholds) copy at most


def fold_sums(
    curves: FloatArray, folds: npt.NDArray[np.integer], labels: npt.NDArray[np.integer]
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Each blend's Dice summed over each fold's images, (points, folds, thresholds), NaN taken
    as 0, and whether any of the fold's images is NaN for the blend, (points, folds). Read a
    block of images at a time, so that no copy of ``curves`` (points, images, thresholds) is made."""
    sums = np.zeros((curves.shape[0], len(labels), curves.shape[2]))
    missing = np.zeros((curves.shape[0], len(labels)), dtype=bool)
    for start in range(0, curves.shape[1], FOLD_BLOCK):
        block = curves[:, start : start + FOLD_BLOCK]
        empty = np.isnan(block)
        clean = np.where(empty, 0.0, block)
        for index, fold in enumerate(labels):
            mine = folds[start : start + FOLD_BLOCK] == fold
            sums[:, index] += clean[:, mine].sum(axis=1)
            missing[:, index] |= empty[:, mine].any(axis=(1, 2))
    return sums, missing


def nested_choice(
    curves: FloatArray,
    at_half: FloatArray,
    points: FloatArray,
    thresholds: FloatArray,
    folds: npt.NDArray[np.integer],
) -> tuple[FloatArray, FloatArray, dict[int, Choice]]:
    """Each image's Dice under the blend and threshold chosen on the other folds' images, as a
    new image would meet them. ``curves``: (points, images, thresholds); ``at_half``: (points,
    images), each blend's Dice at threshold 0.5; ``folds``: (images,). Returns (images,) Dice at
    the chosen threshold and at 0.5 under the chosen weights, and each fold's choice (its
    ``dice`` is on the other folds). With one fold there is nothing to leave out, so this raises.
    The other folds' means come from per-fold sums (``fold_sums``), not from copies of their curves."""
    labels = np.unique(folds)
    if len(labels) < 2:
        raise ValueError("choosing on other folds needs at least two folds")
    sums, missing = fold_sums(curves, folds, labels)
    sizes = np.array([int((folds == fold).sum()) for fold in labels])
    at_choice = np.empty(curves.shape[1])
    half = np.empty(curves.shape[1])
    choices = {}
    for index, fold in enumerate(labels):
        held = folds == fold
        # a blend that leaves some held-out image without a network cannot be chosen for them
        usable = ~missing[:, index]
        if not usable.any():
            raise ValueError(f"every blend leaves some image of fold {fold} without a network")
        others = np.arange(len(labels)) != index
        mean = sums[:, others].sum(axis=1) / sizes[others].sum()
        mean[~usable | missing[:, others].any(axis=1)] = np.nan
        choice = choose_by_mean(mean, points, thresholds)
        choices[int(fold)] = choice
        at_choice[held] = curves[choice.point, held, choice.threshold]
        half[held] = at_half[choice.point, held]
    return at_choice, half, choices
