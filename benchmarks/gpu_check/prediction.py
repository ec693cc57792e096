"""Prediction's figures: the shard path's images/s with each count of loader processes, its cost
per shard, and the networks' forward alone, eager and compiled."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from benchmarks.gpu_check.device import release
from benchmarks.timing import timed
from benchmarks.weights import config_weights, random_weights
from carvana.data.images import read_image
from carvana.layout import DatasetPaths
from carvana.models.flops import flops
from carvana.models.inference import mixed_precision_dtype
from carvana.models.spec import ModelSpec
from carvana.prediction.ensemble import Ensemble, load_member
from carvana.prediction.shard import stream
from carvana.prediction.stream import batches
from carvana.prediction.tta import TTASpec


def prediction(
    config: dict[str, Any],
    specs: list[ModelSpec],
    root: Path,
    device: torch.device,
    args: argparse.Namespace,
    compiles: list[bool],
) -> dict[str, Any]:
    """The shard path (every ``--workers`` count) and the forward alone, eager and compiled: one
    network per configured model, the config's TTA and batch size."""
    predict = config.get("predict", {})
    tta_config = predict.get("tta", {})
    tta = TTASpec(
        bool(tta_config.get("hflip", True)),
        bool(tta_config.get("vflip", False)),
        tuple(tta_config.get("scales", [1.0])),
    )
    batch_size = int(predict.get("batch_size", 8))
    paths = DatasetPaths(root / "data")
    names = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    names = names[: max(batch_size, len(names) // batch_size * batch_size)]  # whole batches
    weights_paths = random_weights(specs, 1, root)
    ensemble_weights = config_weights(config)
    figures: dict[str, Any] = {
        "images": len(names),
        "batch_size": batch_size,
        "networks": len(weights_paths),
        "views": len(tta.views()) * len(tta.scales),
        "runs": [],
    }
    for compiled in compiles:
        members = [load_member(path, device) for path in weights_paths]
        if compiled:
            for member in members:
                member.network.compile(dynamic=False)
        ensemble = Ensemble(members, tta, device, mixed_precision_dtype(device), ensemble_weights)
        figures["flops_per_image"] = sum(  # every run (member and scale) takes every flip view
            len(tta.views()) * flops(spec, train=False) for _, _, spec in ensemble.runs()
        )
        figures["runs"] += prediction_rates(ensemble, paths, names, batch_size, root, args.workers, compiled)
        del ensemble, members
        release(device)
    return figures


def prediction_rates(
    ensemble: Ensemble,
    paths: DatasetPaths,
    names: list[str],
    batch_size: int,
    root: Path,
    workers_counts: list[int],
    compiled: bool,
) -> list[dict[str, Any]]:
    """Images/s of the networks' forward on batches prepared ahead, and of the shard path with
    each count of loader processes. The path is timed on all the images and on the first half:
    the difference is its steady cost per image, and what is left of the half its cost per shard
    (the loader's start, the first batch that nothing overlaps, the growing first batches)."""
    device = ensemble.device
    prepared = [
        ensemble.prepare([read_image(paths.image_path("test", name)) for name in batch])
        for batch in batches(names, batch_size, ramp=False)
    ]
    if device.type == "cuda":
        prepared = [batch.pin_memory() for batch in prepared]
    first = timed(
        lambda: ensemble.forward(prepared[0]), device, repeats=1
    )  # compiling, cuDNN's kernel search
    forward = timed(lambda: [ensemble.forward(batch) for batch in prepared], device, repeats=2)
    half = max(batch_size, len(names) // 2 // batch_size * batch_size)
    runs = []
    for workers in workers_counts:
        seconds = {}
        for count in sorted({half, len(names)}):
            path = partial(
                stream,
                ensemble,
                paths,
                names[:count],
                batch_size,
                0.5,
                root / "out.csv",
                workers=workers,
                compiled=compiled,
            )
            seconds[count] = timed(path, device, repeats=2)
        per_image = seconds[len(names)] / len(names)
        if half < len(names):
            per_image = max((seconds[len(names)] - seconds[half]) / (len(names) - half), per_image / 4)
        runs.append(
            {
                "compiled": compiled,
                "workers": workers,
                "images_per_s": 1 / per_image,
                "forward_images_per_s": len(names) / forward,
                "path_over_forward": per_image * len(names) / forward,
                "shard_seconds": max(0.0, seconds[half] - half * per_image),
                "first_batch_seconds": first,
            }
        )
    return runs
