"""One prediction shard: a contiguous slice of the test set, streamed in batches to RLE rows.

Shard ``index`` of ``count`` (from 1, as Snakemake's scatter names them) takes its slice of
sample_submission.csv's rows. The batches go through three overlapping steps: a loader thread
decodes batch k+1 and builds its network inputs while the networks run on batch k, and a writer
thread resizes batch k-1's maps back to full size, thresholds them at the tuned threshold and
writes their RLE rows in order. So the decoding, resizing and encoding hide behind the networks,
and memory holds a few batches, whatever the size of the test set. The CSV appears under its
name only once whole.
"""

from __future__ import annotations

import csv
import json
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from carvana import rle
from carvana.atomic import atomic_path
from carvana.data.images import read_image
from carvana.failures import out_of_memory_advice
from carvana.layout import RLE_HEADER, DatasetPaths
from carvana.models.inference import mixed_precision_dtype
from carvana.prediction.ensemble import Ensemble, Prepared, load_member
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
    with advice:
        stream(ensemble, paths, images, shard.batch_size, threshold, out_path)
    seconds = time.perf_counter() - started
    rate = len(images) / max(seconds, 1e-9)
    print(f"shard {shard.index}: {len(images)} images in {seconds:.1f} s ({rate:.1f} images/s)")
    return len(images)


def stream(
    ensemble: Ensemble,
    paths: DatasetPaths,
    images: list[str],
    batch_size: int,
    threshold: float,
    out_path: Path,
) -> None:
    """The per-image path: test ``images`` in batches through ``ensemble`` to RLE rows in
    ``out_path``, loading batch k+1 and writing batch k-1 in threads while the networks run.
    The first batch is a quarter of one: the networks wait only for its decoding."""
    first = max(1, batch_size // 4)
    rest = range(first, len(images), batch_size)
    batches = [images[:first], *(images[start : start + batch_size] for start in rest)]

    def load(names: list[str]) -> Prepared:
        return ensemble.prepare([read_image(paths.image_path("test", name)) for name in names])

    with (
        atomic_path(out_path) as temporary,
        temporary.open("w", newline="") as file,
        ThreadPoolExecutor(1, "load") as loader,
        ThreadPoolExecutor(1, "write") as writer,
    ):
        rows = csv.writer(file)
        rows.writerow(RLE_HEADER)

        def write(names: list[str], prepared: Prepared, maps: list[npt.NDArray[np.float32]]) -> None:
            for name, probability in zip(names, ensemble.finish(prepared, maps), strict=True):
                rows.writerow((name, rle.encode(probability >= threshold)))

        pending: deque[Future[None]] = deque()
        next_batch = loader.submit(load, batches[0]) if images else None
        for number, names in enumerate(batches if images else []):
            assert next_batch is not None
            prepared = next_batch.result()
            if number + 1 < len(batches):
                next_batch = loader.submit(load, batches[number + 1])
            maps = ensemble.forward(prepared)
            pending.append(writer.submit(write, names, prepared, maps))
            while len(pending) > 2:  # a bounded queue: memory does not grow with the test set
                pending.popleft().result()
        for done in pending:
            done.result()
