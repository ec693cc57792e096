"""One pass over the training images' OOF maps: every per-image Dice curve that tuning reads.

Tuning scores by the competition's metric, the mean over images of each image's Dice. So an
image contributes, for each map and each blend of maps, its Dice at every threshold of the grid,
worked out from that image's intersection and two areas at each threshold
(``carvana.tuning.threshold``): a (columns,) curve per model with TTA and without, and a
(blends, columns) array per group of blends. The curves of an image depend on that image alone,
so the images are cut into chunks that ``threads`` worker processes score side by side, each
reading an image's maps once, and the parent puts the curves back in image order. What tuning
chooses, tabulates and plots comes from these arrays; no map is read again.

The workers are started fresh (``spawn``), import no more than NumPy and OpenCV, and run OpenCV
on one thread each. With one thread no process is started.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from carvana import rle
from carvana.prediction.weights import job_name
from carvana.tuning.blend import blend_curves, counted
from carvana.tuning.threshold import dice_at_thresholds

FloatArray = npt.NDArray[np.float64]
CHUNKS_PER_WORKER = 8  # small chunks even out the workers' finishing times; each costs a pickle


def oof_path(models_dir: Path, model: str, fold: int, img: str, folder: str = "oof") -> Path:
    """Where the OOF stage wrote a network's map of ``img``: with TTA in ``oof``, without it in
    ``oof_plain``."""
    return models_dir / model / f"fold{fold}" / folder / (img.removesuffix(".jpg") + ".png")


def read_oof(path: Path) -> npt.NDArray[np.uint8]:
    """An OOF map, (H, W) uint8 (p x 255), or an error naming the job to rerun."""
    probability = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if probability is None or probability.dtype != np.uint8 or probability.ndim != 2:
        raise FileNotFoundError(f"{path}: missing or not a uint8 probability map; rerun that job's OOF maps")
    return np.asarray(probability, dtype=np.uint8)


@dataclass(frozen=True)
class BlendGroup:
    """Blends of the models' TTA maps scored together: ``points`` (blends, models) weights, and
    the networks (``<model>/fold<k>``) whose maps are left out of them."""

    points: FloatArray
    left_out: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ScanPlan:
    """What a pass computes for each image: with ``curves``, each model's curve with TTA and
    without (reading ``oof`` and ``oof_plain``); each group's blends of the TTA maps."""

    models_dir: Path
    models: tuple[str, ...]
    columns: FloatArray  # the thresholds of every curve
    groups: tuple[BlendGroup, ...] = ()
    curves: bool = True


@dataclass(frozen=True)
class Images:
    """The images a pass scores, in order: names, folds and true masks (RLE)."""

    names: list[str]
    folds: list[int]
    truth_rle: list[str]

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Scan:
    """A pass's curves in image order: ``tta`` and ``plain`` map a model to (images, columns)
    (empty without ``ScanPlan.curves``); ``blends`` holds one (blends, images, columns) array per
    group."""

    tta: dict[str, FloatArray] = field(default_factory=dict)
    plain: dict[str, FloatArray] = field(default_factory=dict)
    blends: list[FloatArray] = field(default_factory=list)


def scan(plan: ScanPlan, images: Images, threads: int = 1) -> Scan:
    """Every curve of ``plan`` for every image, scored by ``threads`` worker processes."""
    if threads < 1:
        raise ValueError(f"tuning needs at least one thread, got {threads}")
    count, width = len(images), len(plan.columns)
    result = Scan(
        {model: np.empty((count, width)) for model in plan.models} if plan.curves else {},
        {model: np.empty((count, width)) for model in plan.models} if plan.curves else {},
        [np.empty((len(group.points), count, width)) for group in plan.groups],
    )
    for rows, chunk in _scored(plan, images, threads):
        if plan.curves:
            for model, tta, plain in zip(plan.models, chunk.tta_curves, chunk.plain_curves, strict=True):
                result.tta[model][rows] = tta
                result.plain[model][rows] = plain
        for whole, part in zip(result.blends, chunk.blend_curves, strict=True):
            whole[:, rows] = part
    return result


@dataclass
class Chunk:
    """A chunk's curves: per model (images, columns) with TTA and without, and per group
    (blends, images, columns)."""

    tta_curves: list[FloatArray]
    plain_curves: list[FloatArray]
    blend_curves: list[FloatArray]


def _scored(plan: ScanPlan, images: Images, threads: int) -> Iterator[tuple[slice, Chunk]]:
    """(rows, their curves) for every chunk of ``images``, in order. A chunk's curves are let go
    as soon as they are handed over (``Executor.map`` drops each result it yields), so that the
    parent holds each image's curves once."""
    workers = min(threads, len(images))
    size = max(1, math.ceil(len(images) / (workers * CHUNKS_PER_WORKER)))
    rows = [slice(start, min(start + size, len(images))) for start in range(0, len(images), size)]
    chunks = (Images(images.names[r], images.folds[r], images.truth_rle[r]) for r in rows)
    if workers <= 1:
        yield from ((r, score_chunk(plan, chunk)) for r, chunk in zip(rows, chunks, strict=True))
        return
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, spawn, initializer=_start_worker, initargs=(plan,))
    try:
        yield from zip(rows, pool.map(_score_in_worker, chunks), strict=True)
    except BaseException:  # a map that fails (or a caller that stops): the chunks not begun never run
        pool.shutdown(cancel_futures=True)
        raise
    finally:
        pool.shutdown()


_WORKER_PLAN: ScanPlan | None = None


def _start_worker(plan: ScanPlan) -> None:
    global _WORKER_PLAN
    cv2.setNumThreads(1)  # the pool has the job's cores: one each
    _WORKER_PLAN = plan


def _score_in_worker(images: Images) -> Chunk:
    if _WORKER_PLAN is None:
        raise RuntimeError("a tuning worker was not started with its plan")
    return score_chunk(_WORKER_PLAN, images)


def score_chunk(plan: ScanPlan, images: Images) -> Chunk:
    """The curves of ``plan`` for each of ``images``."""
    count, width = len(images), len(plan.columns)
    models = len(plan.models) if plan.curves else 0
    chunk = Chunk(
        [np.empty((count, width)) for _ in range(models)],
        [np.empty((count, width)) for _ in range(models)],
        [np.empty((len(group.points), count, width)) for group in plan.groups],
    )
    for row, (img, fold, truth_rle) in enumerate(
        zip(images.names, images.folds, images.truth_rle, strict=True)
    ):
        maps = {model: read_oof(oof_path(plan.models_dir, model, fold, img)) for model in plan.models}
        truth = rle.decode(truth_rle, maps[plan.models[0]].shape)
        for model, probability in maps.items():
            if probability.shape != truth.shape:
                raise ValueError(f"{model}'s OOF map of {img} is {probability.shape}, its mask {truth.shape}")
        if plan.curves:
            offset = (truth.ravel() != 0).astype(np.uint16) * np.uint16(256)
            for index, model in enumerate(plan.models):
                chunk.tta_curves[index][row] = map_curve(maps[model], offset, plan.columns)
                plain = read_oof(oof_path(plan.models_dir, model, fold, img, "oof_plain"))
                if plain.shape != truth.shape:
                    raise ValueError(f"{model}'s OOF map of {img} is {plain.shape}, its mask {truth.shape}")
                chunk.plain_curves[index][row] = map_curve(plain, offset, plan.columns)
        for curves, group in zip(chunk.blend_curves, plan.groups, strict=True):
            present = [None if job_name(m, fold) in group.left_out else maps[m] for m in plan.models]
            curves[:, row] = blend_curves(present, truth, group.points, plan.columns)
    return chunk


def map_curve(
    probability: npt.NDArray[np.uint8], offset: npt.NDArray[np.uint16], thresholds: FloatArray
) -> FloatArray:
    """Dice of one map alone at each threshold: (thresholds,) float64. ``probability``: (H, W)
    uint8; ``offset``: (H * W,) uint16, 256 where the true mask (flattened) is car, else 0. The
    same as ``blend_curves`` of the map alone, counted in one pass: a car pixel at 256 + its value."""
    levels = probability.ravel().astype(np.uint16)
    levels += offset
    counts = counted(levels, 512)
    return dice_at_thresholds(counts[256:], counts[:256], thresholds)
