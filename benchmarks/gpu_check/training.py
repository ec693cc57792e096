"""A model's training figures: the training step's images/s (eager and compiled, with its loader
and without), its loader's, validation's, and the step's peak memory and largest batch."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, default_collate

from benchmarks.gpu_check.device import Memory, release
from benchmarks.timing import synchronize, timed
from carvana.layout import DatasetPaths
from carvana.models.flops import flops
from carvana.models.spec import ModelSpec

HEADROOM = 0.92  # of the device's memory a batch may plan on: the allocator's cache and fragments


def training(
    spec: ModelSpec, paths: DatasetPaths, device: torch.device, steps: int, compiles: list[bool]
) -> dict[str, Any]:
    """One architecture's training figures (see the module's docstring)."""
    from carvana.training.data import SegmentationDataset
    from carvana.training.job import choose_device

    autocast = choose_device(spec).autocast_dtype
    names = sorted(path.name for path in paths.train_dir.glob("*.jpg"))
    dataset = SegmentationDataset(paths, names, spec, train=True)
    batch = to_device(default_collate([dataset[i % len(names)] for i in range(spec.batch_size)]), device)
    figures: dict[str, Any] = {
        "arch": spec.arch,
        "input_size": list(spec.tile_size or spec.input_size),
        "batch_size": spec.batch_size,
        "epochs": spec.epochs,
        "workers": spec.workers,
        "precision": str(autocast).removeprefix("torch.") if autocast else "float32",
        "train_flops_per_image": flops(spec, train=True),
        "validate_flops_per_image": flops(spec, train=False),
        "loader_images_per_s": loader_rate(dataset, spec, device, steps),
    }
    for compiled in compiles:
        step = TrainStep(spec, device, autocast, compiled, batch)
        network = step.rate(steps)
        figures["compiled" if compiled else "eager"] = {
            # the job's loader runs in its own processes beside the steps: the slower one sets the pace
            "images_per_s": min(network, figures["loader_images_per_s"]),
            "network_images_per_s": network,
        }
        if not compiled:  # validation in eval mode would compile again: measured eager alone
            figures["validate_images_per_s"] = validation(step, spec, paths, names)
            figures.update(batch_memory(step, spec))
        del step
        release(device)
    return figures


def loader_rate(dataset: Any, spec: ModelSpec, device: torch.device, steps: int) -> float:
    """Images/s the model's DataLoader delivers to the device (its workers, pinned memory, the
    copy), timed once every worker has delivered its first batch, over at least twice as many
    batches as it has workers."""
    skip, count = max(1, spec.workers), max(steps, 2 * spec.workers)
    loader = DataLoader(
        dataset,
        batch_size=spec.batch_size,
        sampler=RandomSampler(dataset, replacement=True, num_samples=(skip + count) * spec.batch_size),
        num_workers=spec.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    loaded = iter(loader)
    for _ in range(skip):
        to_device(next(loaded), device)
    seconds = timed(lambda: [to_device(batch, device) for batch in loaded], device, repeats=1)
    return count * spec.batch_size / seconds


class TrainStep:
    """One optimiser step of a model's network on a batch already on the device, as the training
    job takes it: channels-last, under the job's autocast, the task's loss."""

    def __init__(
        self,
        spec: ModelSpec,
        device: torch.device,
        autocast: torch.dtype | None,
        compiled: bool,
        batch: tuple[torch.Tensor, torch.Tensor],
    ):
        from carvana.training.task import SegmentationTask

        self.device, self.autocast, self.batch = device, autocast, batch
        self.task = SegmentationTask(spec.to_json()).to(device)
        if compiled:
            self.task.network.compile(dynamic=False)
        optimizer = self.task.configure_optimizers()
        self.optimizer: torch.optim.Optimizer = (
            optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        )

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.task.train()
        inputs = batch[0].contiguous(memory_format=torch.channels_last)
        with self.autocast_context():
            loss = self.task.loss(self.task.network(inputs), batch[1])
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def rate(self, steps: int) -> float:
        """Images/s over ``steps`` steps on the kept batch, after two to warm up (compiling,
        cuDNN's kernel search, the allocator's cache)."""
        for _ in range(2):
            self(self.batch)

        def run() -> None:
            for _ in range(steps):
                self(self.batch)

        return steps * len(self.batch[0]) / timed(run, self.device, repeats=1)

    def repeated(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``size`` copies of the kept batch's first image."""
        inputs, target = (t[:1].expand(size, *t.shape[1:]).contiguous() for t in self.batch)
        return inputs, target

    def autocast_context(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None)


def validation(step: TrainStep, spec: ModelSpec, paths: DatasetPaths, names: list[str]) -> float:
    """Validation images/s: the forward on whole images (every tile for the UNet) as each epoch
    ends, on held-out batches decoded ahead; the first batch is a warm-up."""
    from carvana.training.data import SegmentationDataset

    device = step.device
    loader = DataLoader(
        SegmentationDataset(paths, names, spec, train=False),
        batch_size=spec.batch_size,
        num_workers=spec.workers,
        drop_last=True,
    )
    step.task.eval()
    loaded = [to_device(batch, device) for batch in loader]

    @torch.no_grad()
    def forward(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        with step.autocast_context():
            step.task(batch[0])

    forward(loaded[0])
    return (
        (len(loaded) - 1)
        * spec.batch_size
        / timed(lambda: [forward(b) for b in loaded[1:]], device, repeats=1)
    )


def batch_memory(step: TrainStep, spec: ModelSpec) -> dict[str, Any]:
    """Peak memory of a training step at the configured batch and at half of it (twice it below
    4: a BatchNorm takes no batch of one), each measured on a second step (the first at a size
    includes cuDNN's kernel search); the largest batch this device holds, from the two (a fixed
    part and a part per image), at most 16 times the configured batch, and on a GPU tried."""
    device, memory = step.device, Memory(step.device)
    other = spec.batch_size // 2 if spec.batch_size >= 4 else spec.batch_size + 2
    peaks = {}
    for size in (other, spec.batch_size):
        step(step.repeated(size))
        synchronize(device)
        memory.reset()
        step(step.repeated(size))
        synchronize(device)
        peaks[size] = memory.peak_mib()
    (small, low), (large, high) = sorted(peaks.items())
    per_image = (high - low) / (large - small)
    capacity = memory.capacity_mib()
    cap = 16 * spec.batch_size
    largest = cap if per_image <= 0 else int((HEADROOM * capacity - (low - small * per_image)) / per_image)
    largest = max(1, min(largest, cap))
    if device.type == "cuda":
        largest = fits(step, largest)
    return {
        "peak_memory_mib": peaks[spec.batch_size],
        "memory_per_image_mib": per_image,
        "capacity_mib": capacity,
        "largest_batch": largest,
        "largest_batch_capped": largest == cap,
        "largest_batch_tried": device.type == "cuda",
    }


def fits(step: TrainStep, size: int) -> int:
    """The largest batch up to ``size`` that a training step runs at, stepping down a tenth at a
    time past errors (out of memory, or a kernel that takes no tensor that large); 0 if none."""
    benchmark, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, False  # no search per try
    try:
        while size >= 1:
            try:
                step(step.repeated(size))
                synchronize(step.device)
                return size
            except RuntimeError:  # torch.OutOfMemoryError among them
                step.optimizer.zero_grad(set_to_none=True)
                release(step.device)
                size = min(size - 1, int(size * 0.9))
        return 0
    finally:
        torch.backends.cudnn.benchmark = benchmark


def to_device(
    batch: tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
