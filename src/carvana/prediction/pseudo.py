"""Pseudo labels: the test images as one fold's networks of the round before would submit them.

A fold's labels are made in shards, as prediction is: shard i of n labels its contiguous slice
of sample_submission.csv into a folder of its own, which appears under its name only once whole
(a killed round redoes the shards it had not finished), and ``carvana.pseudo.gather_labels``
puts the shards' tables into the fold's one table, which the training jobs read.

Round r's fold-k training job trains on fold k's training images and on test images labelled by
round r-1's fold-k networks alone: they never saw fold k's held-out images, so those images'
masks cannot reach fold k's networks through the labels (the full ensemble would carry them in
through the other folds' networks). Only the round before's threshold and ensemble weights,
tuned on every fold's OOF maps as round 0's are, touch them. The labels job
checks this itself: every network it is given must be of its fold.

A shard's folder holds one mask per test image of its slice, ``<img stem>.png``, at its size: a
1-bit PNG, thresholded at the tuned threshold as a submission would be (about 3 KB for a
full-size mask, so the whole test set takes about 0.35 GB), and ``labels.csv`` (img, area,
uncertain), written last. ``uncertain`` is the count of pixels whose probability lies within
``band`` of the threshold, over the mask's area: the share of the mask the ensemble was unsure
of which ``carvana.pseudo.select_pseudo`` ranks by. Each mask is written as its batch finishes; no more than a
few are in memory at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from PIL import Image

from carvana import schema
from carvana.atomic import atomic_path, write_text
from carvana.layout import DatasetPaths
from carvana.prediction.ensemble import read_member
from carvana.prediction.shard import shard_images, tuned_ensemble
from carvana.prediction.stream import stream_maps
from carvana.prediction.tta import TTASpec
from carvana.pseudo import LABELS_TABLE, label_name


@dataclass(frozen=True)
class PseudoSpec:
    """How one round's labels are made: the TTA, the batch size, where, and the band around the
    threshold within which a pixel counts as uncertain."""

    tta: TTASpec
    batch_size: int = schema.default("predict.batch_size")
    gpu: int = schema.default("predict.gpu")
    workers: int = schema.default("predict.workers")
    band: float = schema.default("pseudo.band")

    def __post_init__(self) -> None:
        if not 0 < self.band < 1:
            raise ValueError(f"the uncertainty band must be in (0, 1), got {self.band}")


def write_label(path: Path, mask: npt.NDArray[np.bool_]) -> None:
    """A mask as a 1-bit PNG, whole or not at all."""
    with atomic_path(path) as temporary:
        Image.fromarray(mask).save(temporary, format="PNG", optimize=True)


def uncertain_share(probability: npt.NDArray[np.float32], threshold: float, band: float) -> float:
    """Pixels within ``band`` of ``threshold``, over the mask's area (at least one pixel)."""
    unsure = int(np.count_nonzero(np.abs(probability - np.float32(threshold)) < band))
    area = int(np.count_nonzero(probability >= threshold))
    return unsure / max(area, 1)


def check_one_fold(weights_paths: list[Path], fold: int) -> None:
    """Refuse networks of another fold: they saw fold ``fold``'s held-out images, whose masks
    would then leak into its OOF score through the labels."""
    others = []
    for path in weights_paths:
        member = read_member(path)
        if member.fold != fold:
            others.append(f"{path} (fold {member.fold})")
    if others:
        raise ValueError(
            f"pseudo labels for fold {fold} must come from fold {fold}'s networks alone, which never "
            f"saw its held-out images; got {', '.join(others)}"
        )


def write_pseudo_labels(
    spec: PseudoSpec,
    data_dir: Path,
    weights_paths: list[Path],
    thresholds_path: Path,
    fold: int,
    out_dir: Path,
    shard: tuple[int, int] = (1, 1),
) -> pd.DataFrame:
    """Label the test images of ``shard`` (index, count: its slice of sample_submission's rows,
    as prediction's ``shard_images``) with fold ``fold``'s networks, weighted and thresholded as
    ``thresholds_path`` says; write the masks and labels.csv into the folder ``out_dir``, which
    appears only once whole."""
    check_one_fold(weights_paths, fold)
    paths = DatasetPaths(data_dir)
    every = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    index, count = shard
    if not 1 <= index <= count:
        raise ValueError(f"shard index must be in 1..{count}, got {index}")
    images = shard_images(every, index, count)
    tuned = tuned_ensemble(weights_paths, thresholds_path, spec.tta, spec.gpu)
    threshold = tuned.threshold
    print(
        f"pseudo labels of fold {fold}, shard {index} of {count}: {len(images)} of {len(every)} test "
        f"images through {len(tuned.ensemble.members)} networks on {tuned.ensemble.device}, threshold "
        f"{threshold:.2f}" + tuned.left_out_note(),
        flush=True,
    )
    rows: list[tuple[str, int, float]] = []
    started = time.perf_counter()
    what = f"pseudo labels of fold {fold}, shard {index}"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir) as folder:
        folder.mkdir()

        def write(name: str, probability: npt.NDArray[np.float32]) -> None:
            mask = probability >= threshold
            write_label(folder / label_name(name), mask)
            rows.append((name, int(mask.sum()), uncertain_share(probability, threshold, spec.band)))

        stream_maps(tuned.ensemble, paths, images, spec.batch_size, write, what, spec.workers)
        table = pd.DataFrame(rows, columns=["img", "area", "uncertain"])
        write_text(folder / LABELS_TABLE, table.to_csv(index=False, float_format="%.6f"))
    seconds = time.perf_counter() - started
    empty = int((table["area"] == 0).sum())
    print(
        f"fold {fold}, shard {index} of {count}: {len(table)} pseudo labels in {seconds:.1f} s, "
        f"median uncertain share {table['uncertain'].median():.4f}"
        + (f"; {empty} empty masks" if empty else ""),
        flush=True,
    )
    return table
