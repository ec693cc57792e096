"""One prediction shard: a contiguous slice of the test set, streamed in batches to RLE rows.

Shard ``index`` of ``count`` (from 1, as Snakemake's scatter names them) takes its slice of
sample_submission.csv's rows. The batches go through three overlapping steps: a loader thread
decodes batch k+1 and builds its network inputs while the networks run on batch k, and a writer
thread resizes batch k-1's maps back to full size, thresholds them at the tuned threshold and
writes their RLE rows in order. So the decoding, resizing and encoding hide behind the networks,
and memory holds a few batches, whatever the size of the test set. The first batches grow from
one image to the batch size, so the networks start as soon as one image is prepared. The CSV appears
under its name only once whole.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from carvana import rle
from carvana.atomic import atomic_path
from carvana.data.images import read_image
from carvana.failures import out_of_memory_advice
from carvana.layout import RLE_HEADER, DatasetPaths
from carvana.models.inference import mixed_precision_dtype
from carvana.prediction.ensemble import Ensemble, Prepared, load_member, opencv_threads
from carvana.prediction.tta import TTASpec
from carvana.prediction.weights import job_name


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int
    batch_size: int = 8
    tta: TTASpec = field(default_factory=TTASpec)
    gpu: int = 1
    compile: bool = False  # torch.compile each network
    workers: int = 0  # DataLoader worker processes that load the batches; 0: a thread

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


def batches(images: list[str], batch_size: int, ramp: bool = True) -> list[list[str]]:
    """``images`` in consecutive batches of ``batch_sizes``."""
    bounds = itertools.accumulate(batch_sizes(len(images), batch_size, ramp), initial=0)
    return [images[start:end] for start, end in itertools.pairwise(bounds)]


def batch_sizes(count: int, batch_size: int, ramp: bool = True) -> list[int]:
    """The sizes of the batches that stream ``count`` images: doubling from one image up to
    ``batch_size`` (with ``ramp``), then full batches, then what is left. While the networks run
    on a batch the loader prepares one at most twice its size, so the networks start after one
    image's preparation, not a whole batch's. Compiled networks take full batches from the start,
    as they are compiled for the shape of the first."""
    sizes: list[int] = []
    size, left = (1 if ramp else batch_size), count
    while left > 0:
        sizes.append(min(size, left))
        left -= sizes[-1]
        size = min(2 * size, batch_size)
    return sizes


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


Output = TypeVar("Output")


class Predictor(Protocol[Output]):
    """What streams a batch to its maps in three steps (``Ensemble`` is one): ``prepare`` (NumPy,
    in the loader), ``forward`` (the networks) and ``finish`` (NumPy, in the writer), which
    returns one output per image."""

    @property
    def device(self) -> torch.device: ...

    def prepare(self, images: list[npt.NDArray[np.uint8]]) -> Prepared: ...

    def forward(self, prepared: Prepared) -> list[npt.NDArray[np.float32]]: ...

    def finish(self, sizes: list[tuple[int, int]], maps: list[npt.NDArray[np.float32]]) -> list[Output]: ...


T = TypeVar("T")


def stream_maps(
    ensemble: Predictor[T],
    paths: DatasetPaths,
    images: list[str],
    batch_size: int,
    write: Callable[[str, T], None],
    what: str = "prediction",
    workers: int = 0,
    compiled: bool = False,
    split: str = "test",
) -> None:
    """The per-image path: ``split``'s ``images`` in batches through ``ensemble``, each image's
    map at its own size (an ``Ensemble``'s; another predictor's output) handed to ``write(name,
    output)`` in order, loading batch k+1 (in a thread, or in ``workers`` processes) and writing
    batch k-1 in a thread while the networks run on batch k. Running out of GPU memory stops it
    with advice naming ``what``. ``compiled``: full batches from the start (see ``batch_sizes``)."""
    names_by_batch = batches(images, batch_size, ramp=not compiled)
    one_image = "turn a flip off or lower predict.tta.scales (an image's views go through together)"

    with (
        loaded(ShardBatches(ensemble, paths, names_by_batch, split), workers) as prepared_batches,
        ThreadPoolExecutor(1, "write") as writer,
    ):

        def finish(
            names: list[str], sizes: list[tuple[int, int]], maps: list[npt.NDArray[np.float32]]
        ) -> None:
            for name, probability in zip(names, ensemble.finish(sizes, maps), strict=True):
                write(name, probability)

        pending: deque[Future[None]] = deque()
        for names, prepared in zip(names_by_batch, prepared_batches, strict=True):
            with out_of_memory_advice(what, "predict.batch_size", len(names), one_image, batch_size):
                maps = ensemble.forward(prepared)
            pending.append(writer.submit(finish, names, prepared.sizes, maps))
            del prepared  # the inputs: the writer needs only the images' sizes
            while len(pending) > 2:  # a bounded queue: memory does not grow with the test set
                pending.popleft().result()
        for done in pending:
            done.result()


class ShardBatches(Dataset[Prepared]):
    """Batch k of a shard: its images (of ``split``) decoded and made into the networks' inputs."""

    def __init__(
        self, ensemble: Predictor[Any], paths: DatasetPaths, batches: list[list[str]], split: str = "test"
    ):
        self.ensemble, self.paths, self.batches, self.split = ensemble, paths, batches, split

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Prepared:
        names = self.batches[index]
        return self.ensemble.prepare([read_image(self.paths.image_path(self.split, name)) for name in names])


@contextmanager
def loaded(batches: ShardBatches, workers: int) -> Iterator[Iterator[Prepared]]:
    """The prepared batches in order, each loaded while the networks run on the one before it:
    with no ``workers`` by a thread of this process, else by a DataLoader's worker processes
    (their tensors reach this process through shared memory). On a GPU they come in pinned memory."""
    pin = batches.ensemble.device.type == "cuda"
    if workers > 0:
        loader = DataLoader(batches, batch_size=None, num_workers=workers, pin_memory=pin)
        yield iter(loader)
        return
    with ThreadPoolExecutor(1, "load") as thread:

        def load(index: int) -> Prepared:
            prepared = batches[index]
            return prepared.pin_memory() if pin else prepared

        def one_ahead() -> Iterator[Prepared]:
            next_batch = thread.submit(load, 0) if len(batches) else None
            for index in range(len(batches)):
                assert next_batch is not None
                prepared = next_batch.result()
                if index + 1 < len(batches):
                    next_batch = thread.submit(load, index + 1)
                yield prepared

        yield one_ahead()
