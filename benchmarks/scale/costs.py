"""The GPU stages' costs (their writer threads timed here, their networks from gpu_check's JSON or
their FLOPs) and the disk, worked out from the sizes of the files the sample wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.scale.sample import Sample
from carvana import rle
from carvana.data.images import read_mask
from carvana.models.build import build_model
from carvana.models.flops import flops
from carvana.models.inference import resize
from carvana.models.spec import ModelSpec
from carvana.prediction.ensemble import add_weighted
from carvana.prediction.oof import write_map
from carvana.prediction.pseudo import uncertain_share, write_label
from carvana.projection import Counts, NetworkCost


def writer_seconds(sample: Sample, specs: list[ModelSpec], counts: Counts) -> dict[str, float]:
    """One core's seconds per image of each GPU stage's writer thread: an OOF job's two PNGs and
    Dice, a labels job's 1-bit PNG and uncertain share, a prediction shard's resizing of every
    network's map to the image's size, their weighted sum, threshold and RLE."""
    names = sample.train_names()[:8]
    masks = [read_mask(sample.paths.mask_path(name)) for name in names]
    maps = [np.clip(mask + np.float32(0.2), 0, 1).astype(np.float32) for mask in masks]
    out = sample.root / "writers"
    out.mkdir()
    timings: dict[str, float] = {}

    def timed(name: str, work: Callable[[int], None]) -> None:
        started = time.perf_counter()
        for index in range(len(names)):
            work(index)
        timings[name] = (time.perf_counter() - started) / len(names)

    def oof(i: int) -> None:
        for folder in ("oof", "oof_plain"):
            write_map(out / f"{folder}_{i}.png", maps[i], masks[i])

    timed("oof", oof)

    def label(i: int) -> None:
        write_label(out / f"label_{i}.png", maps[i] >= 0.5)
        uncertain_share(maps[i], 0.5, 0.2)

    timed("pseudo_labels", label)
    small = [np.asarray(resize(maps[0], spec.input_size), dtype=np.float32) for spec in specs]

    def finish(i: int) -> None:
        total = np.zeros(sample.size, dtype=np.float32)
        for _ in range(counts.folds):
            for probability in small:
                add_weighted(total, np.asarray(resize(probability, sample.size), dtype=np.float32), 1.0)
        rle.encode(total >= counts.folds * len(small) / 2)

    timed("predict", finish)
    return timings


def network_costs(
    specs: list[ModelSpec], gpu_check: Path, assumed_tflops: float
) -> tuple[dict[str, NetworkCost], str, str]:
    """Each model's seconds per image on one GPU: measured by make gpu-check, or its FLOPs at
    ``assumed_tflops``."""
    if gpu_check.is_file():
        figures = json.loads(gpu_check.read_text())
        device = figures.get("machine", "a GPU")
        costs = {}
        for spec in specs:
            measured = figures["training"][spec.name]
            rate = max(measured[key]["images_per_s"] for key in ("eager", "compiled") if key in measured)
            costs[spec.name] = NetworkCost(spec.epochs, 1 / rate, 1 / measured["validate_images_per_s"])
        if figures.get("image_scale", 1) == 1:
            return costs, "gpu_check", f"measured by make gpu-check on {device}"
    rate = assumed_tflops * 1e12
    costs = {
        spec.name: NetworkCost(spec.epochs, flops(spec, True) / rate, flops(spec, False) / rate)
        for spec in specs
    }
    said = f"assumed: the networks' FLOPs at {assumed_tflops:g} TFLOP/s (no full-size make gpu-check yet)"
    return costs, "assumed", said


def disk_bytes(sample: Sample, specs: list[ModelSpec], counts: Counts) -> dict[str, float]:
    """Disk at the competition's counts, from the sizes of the sample's files."""

    def mean_size(pattern: str, folder: Path) -> float:
        sizes = [path.stat().st_size for path in folder.glob(pattern)]
        return float(np.mean(sizes))

    train, test = counts.train_images, counts.test_images
    jpeg = mean_size("*.jpg", sample.data / "train")
    gif = mean_size("*.gif", sample.data / "train_masks")
    oof = mean_size("*/fold*/oof*/*.png", sample.root / "models")
    label = mean_size("label_*.png", sample.root / "writers")
    rows = sample.root / "rows"
    row = (rows / "submission.csv.gz").stat().st_size / sample.rows()
    csv_row = sum(path.stat().st_size for path in rows.glob("shard_*.csv")) / sample.rows()
    checkpoints = 0.0
    for spec in specs:
        parameters = sum(p.numel() for p in build_model(spec, load_pretrained=False).parameters())
        slots = {"adam": 2, "sgd": 1, "rmsprop": 2}.get(spec.optimizer.name, 2)
        checkpoints += (
            counts.folds * parameters * 4 * (2 + slots)
        )  # weights.pt, last.ckpt with the optimizer's
    return {
        "data: archives and their extracted files (the sample's JPEG size; Kaggle's differ)": 2
        * (jpeg * (train + test) + gif * train),
        f"OOF maps ({counts.models} models, with TTA and without)": oof * train * counts.models * 2,
        f"pseudo labels, per round ({counts.folds} folds)": label * test * counts.folds,
        f"checkpoints ({counts.folds} folds of every model: weights.pt, last.ckpt)": checkpoints,
        "prediction shards and the submission": (csv_row + row) * test,
    }
