"""One prediction shard: a contiguous slice of the test set, streamed in batches to RLE rows.

Shard ``index`` of ``count`` (from 1, as Snakemake's scatter names them) takes its slice of
sample_submission.csv's rows. Images are decoded a batch at a time, the ensemble's mean map is
thresholded at the tuned threshold and RLE-encoded, and the rows are written as they come: memory
holds one batch, whatever the size of the test set. The CSV appears under its name only once whole.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from carvana import rle
from carvana.atomic import atomic_path
from carvana.data.images import read_image
from carvana.failures import out_of_memory_advice
from carvana.layout import RLE_HEADER, DatasetPaths
from carvana.models.inference import mixed_precision_dtype
from carvana.prediction.ensemble import Ensemble, load_member
from carvana.prediction.tta import TTASpec


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int
    batch_size: int = 8
    tta: TTASpec = field(default_factory=TTASpec)
    gpu: int = 1
    weights: Mapping[str, float] = field(default_factory=dict)  # per model; 1 when left out

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"the number of shards must be at least 1, got {self.count}")
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard index must be in 1..{self.count}, got {self.index}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")


def shard_images(images: list[str], index: int, count: int) -> list[str]:
    """Shard ``index`` (1..count) of ``images``: contiguous slices, sizes differing by at most one."""
    bounds = np.linspace(0, len(images), count + 1).round().astype(int)
    return images[bounds[index - 1] : bounds[index]]


def predict_shard(
    shard: ShardSpec, data_dir: Path, weights_paths: list[Path], thresholds_path: Path, out_path: Path
) -> int:
    """Write ``out_path`` (img,rle_mask rows of this shard, in sample_submission order); return its rows."""
    device = torch.device("cuda" if shard.gpu > 0 and torch.cuda.is_available() else "cpu")
    autocast = mixed_precision_dtype(device)
    threshold = float(json.loads(thresholds_path.read_text())["threshold"])
    paths = DatasetPaths(data_dir)
    every = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    images = shard_images(every, shard.index, shard.count)
    members = [load_member(path, device) for path in weights_paths]
    ensemble = Ensemble(members, shard.tta, device, autocast, shard.weights)
    print(
        f"shard {shard.index} of {shard.count}: {len(images)} of {len(every)} test images, "
        f"{len(members)} networks x {len(shard.tta.views())} flips x {len(shard.tta.scales)} scales "
        f"on {device}, "
        f"threshold {threshold:.2f}",
        flush=True,
    )
    started = time.perf_counter()
    advice = out_of_memory_advice(
        f"prediction shard {shard.index} ({len(members)} networks, {len(shard.tta.views())} flips x "
        f"{len(shard.tta.scales)} scales)",
        "predict.batch_size",
        shard.batch_size,
        "predict.tta.scales",
    )
    with advice, atomic_path(out_path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RLE_HEADER)
        for start in range(0, len(images), shard.batch_size):
            names = images[start : start + shard.batch_size]
            batch = [read_image(paths.image_path("test", name)) for name in names]
            for name, probability in zip(names, ensemble.probabilities(batch), strict=True):
                writer.writerow((name, rle.encode(probability >= threshold)))
    seconds = time.perf_counter() - started
    rate = len(images) / max(seconds, 1e-9)
    print(f"shard {shard.index}: {len(images)} images in {seconds:.1f} s ({rate:.1f} images/s)")
    return len(images)
