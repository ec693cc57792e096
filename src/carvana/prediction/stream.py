"""The per-image path that every stage running networks on images shares: prediction's shards,
the OOF maps and the pseudo labels. A batch goes through three overlapping steps: a loader thread
(or DataLoader worker processes) decodes batch k+1 and builds its network inputs while the
networks run on batch k, and a writer thread hands batch k-1's outputs, in order, to the stage's
``write``. So the decoding, resizing and writing hide behind the networks, and memory holds a
few batches, whatever the number of images. The first batches grow from one image to the batch
size, so the networks start as soon as one image is prepared.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset

from carvana.data.images import read_image
from carvana.failures import out_of_memory_advice
from carvana.layout import DatasetPaths
from carvana.prediction.ensemble import Prepared


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
