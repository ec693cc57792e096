"""One prediction shard: a contiguous slice of the test set, streamed in batches to RLE rows.

Shard ``index`` of ``count`` (from 1, as Snakemake's scatter names them) takes its slice of
sample_submission.csv's rows. Its images stream through ``carvana.prediction.stream``: a loader
thread decodes batch k+1 and builds its network inputs while the networks run on batch k, and a
writer thread resizes batch k-1's maps back to full size, thresholds them at the tuned threshold
and writes their RLE rows in order, so memory holds a few batches, whatever the size of the test
set. The CSV appears under its name only once whole.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from carvana import rle, schema
from carvana.atomic import atomic_path
from carvana.layout import RLE_HEADER, DatasetPaths
from carvana.models.inference import mixed_precision_dtype
from carvana.prediction.ensemble import Ensemble, load_member, opencv_threads
from carvana.prediction.stream import stream_maps
from carvana.prediction.tta import TTASpec
from carvana.prediction.weights import job_name


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int
    batch_size: int = schema.default("predict.batch_size")
    tta: TTASpec = field(default_factory=TTASpec)
    gpu: int = schema.default("predict.gpu")
    compile: bool = schema.default("predict.compile")  # torch.compile each network
    workers: int = schema.default("predict.workers")  # DataLoader processes for the batches; 0: a thread

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"the number of shards must be at least 1, got {self.count}")
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard index must be in 1..{self.count}, got {self.index}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"loader workers must be 0 or more, got {self.workers}")


def shard_images(images: list[str], index: int, count: int) -> list[str]:
    """Shard ``index`` (1..count) of ``images``: contiguous slices, sizes differing by at most one."""
    bounds = np.linspace(0, len(images), count + 1).round().astype(int)
    return images[bounds[index - 1] : bounds[index]]


def predict_shard(
    shard: ShardSpec, data_dir: Path, weights_paths: list[Path], thresholds_path: Path, out_path: Path
) -> int:
    """Write ``out_path`` (img,rle_mask rows of this shard, in sample_submission order); return its rows.

    ``thresholds_path``: tuning's thresholds.json: the threshold, the models' weights (1 each
    where it gives none) and the networks it left out (``<model>/fold<k>``), which are not loaded
    into the ensemble."""
    paths = DatasetPaths(data_dir)
    every = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    images = shard_images(every, shard.index, shard.count)
    tuned = tuned_ensemble(weights_paths, thresholds_path, shard.tta, shard.gpu, shard.compile)
    ensemble, threshold = tuned.ensemble, tuned.threshold
    views = f"{len(shard.tta.views())} flips x {len(shard.tta.scales)} scales"
    print(
        f"shard {shard.index} of {shard.count}: {len(images)} of {len(every)} test images, "
        f"{len(ensemble.members)} {'compiled ' if shard.compile else ''}networks x {views} on "
        f"{ensemble.device}, threshold {threshold:.2f}" + tuned.left_out_note(),
        flush=True,
    )
    started = time.perf_counter()
    what = f"prediction shard {shard.index} ({len(ensemble.members)} networks, {views})"
    stream(ensemble, paths, images, shard.batch_size, threshold, out_path, what, shard.workers, shard.compile)
    seconds = time.perf_counter() - started
    rate = len(images) / max(seconds, 1e-9)
    print(f"shard {shard.index}: {len(images)} images in {seconds:.1f} s ({rate:.1f} images/s)")
    return len(images)


@dataclass
class TunedEnsemble:
    """The networks prediction runs, weighted and thresholded as tuning chose."""

    ensemble: Ensemble
    threshold: float
    left_out: set[str]

    def left_out_note(self) -> str:
        if not self.left_out:
            return ""
        return f"; left out as learnt nothing: {', '.join(sorted(self.left_out))}"


def tuned_ensemble(
    weights_paths: list[Path], thresholds_path: Path, tta: TTASpec, gpu: int, compile: bool = False
) -> TunedEnsemble:
    """The networks of ``weights_paths`` that tuning's thresholds.json kept, with its weights and
    threshold, ready on the GPU (``gpu`` > 0 and CUDA present) or the CPU."""
    device = torch.device("cuda" if gpu > 0 and torch.cuda.is_available() else "cpu")
    opencv_threads(device)
    if device.type == "cuda":  # the same few shapes batch after batch: cuDNN times its kernels once
        torch.backends.cudnn.benchmark = True
    tuned = json.loads(thresholds_path.read_text())
    left_out = set(tuned.get("left_out", []))
    members = [load_member(path, device) for path in weights_paths]
    loaded = Counter(member.spec.name for member in members)
    members = [member for member in members if job_name(member.spec.name, member.fold) not in left_out]
    if not members:
        raise ValueError(
            f"{thresholds_path} leaves out every network given ({', '.join(sorted(left_out))}) as "
            "having learnt nothing: there is nothing to predict with; retrain them first"
        )
    weights = kept_weights(tuned.get("weights", {}), loaded, Counter(member.spec.name for member in members))
    if not any(weights.values()):
        raise ValueError(
            f"{thresholds_path} weighs every network kept here at 0: the models it weighs "
            f"({', '.join(name for name, w in tuned.get('weights', {}).items() if w)}) have no network "
            f"here that tuning kept; retrain the networks it left out ({', '.join(sorted(left_out))}) "
            "or give ensemble.weights by hand"
        )
    if compile:  # compiled at their first batch, for its shape (full batches, no ramp)
        for member in members:
            member.network.compile(dynamic=False)
    ensemble = Ensemble(members, tta, device, mixed_precision_dtype(device), weights)
    return TunedEnsemble(ensemble, float(tuned["threshold"]), left_out)


def kept_weights(
    weights: Mapping[str, float], loaded: Mapping[str, int], kept: Mapping[str, int]
) -> dict[str, float]:
    """Each kept network's weight: its model's (1 where ``weights`` gives none) times the model's
    networks loaded over those kept, so a model keeps its share of the mean when tuning left
    some of its folds' networks out, as tuning blended it. A model with no network kept has none.
    ``loaded``, ``kept``: networks per model."""
    return {
        model: float(weights.get(model, 1.0)) * loaded[model] / count
        for model, count in kept.items()
        if count
    }


def stream(
    ensemble: Ensemble,
    paths: DatasetPaths,
    images: list[str],
    batch_size: int,
    threshold: float,
    out_path: Path,
    what: str = "prediction",
    workers: int = 0,
    compiled: bool = False,
) -> None:
    """Test ``images`` through ``ensemble`` (``stream_maps``) to RLE rows in ``out_path``, which
    appears under its name only once whole."""
    with atomic_path(out_path) as temporary, temporary.open("w", newline="") as file:
        rows = csv.writer(file)
        rows.writerow(RLE_HEADER)

        def write(name: str, probability: npt.NDArray[np.float32]) -> None:
            rows.writerow((name, rle.encode(probability >= threshold)))

        stream_maps(ensemble, paths, images, batch_size, write, what, workers, compiled)
