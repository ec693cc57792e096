"""``make gpu-check``: what the full competition will cost on this device, and how close to its
peak the pipeline runs.

At the competition config (competition.yaml: full width, full resolution, its batch sizes) it
measures, on generated images of the competition's size and networks with random weights (speed
does not depend on the weights):

- training, per architecture: images/s of the whole step (the DataLoader with the model's workers
  and pinned memory, the copy to the device, forward, backward, the optimizer) after a warm-up, in
  the precision the job would choose and channels-last, eager and under ``torch.compile``; the
  same step on a batch already on the device (what the network alone allows); validation images/s;
  peak memory at the configured batch and the largest batch that fits this device;
- prediction: images/s of the whole shard path (decode, flip TTA, every architecture, RLE, write)
  beside the networks' forward alone, with each ``--workers`` count, eager and compiled;
- FLOPs per image counted by ``torch.utils.flop_counter`` (on the meta device: nothing computed),
  the achieved TFLOP/s and their share of the device's dense bf16 peak (a table of known devices;
  elsewhere, or on a CPU, the dense matrix product measured here, in the networks' precision);
- the projected wall clock of the whole competition (every model on every fold for its epochs
  with validation and OOF maps, then the 100,064 test images through every network) on one such
  device and on N of them (``--resources gpu=N``), from each stage's faster measured setting.

Without a GPU it runs on the CPU; ``--image-scale`` and ``--width`` shrink it to something a CPU
runs in a minute, which keeps it working under test. Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import heapq
import itertools
import json
import math
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
import torch
import yaml
from harness import config_weights, machine, random_weights, synchronize, timed
from torch.utils.data import DataLoader, RandomSampler, default_collate

from carvana.data.images import read_image
from carvana.data.synthetic import SyntheticSpec, generate
from carvana.layout import COMPETITION_TEST_IMAGES, COMPETITION_TRAIN_IMAGES, DatasetPaths, scaled_size
from carvana.models.flops import flops
from carvana.models.geometry import unet_output_size
from carvana.models.inference import mixed_precision_dtype
from carvana.models.spec import ModelSpec, model_specs
from carvana.prediction.ensemble import Ensemble, load_member, opencv_threads
from carvana.prediction.shard import stream
from carvana.prediction.stream import batches
from carvana.prediction.tta import TTASpec

ROOT = Path(__file__).resolve().parents[1]
HEADROOM = 0.92  # of the device's memory a batch may plan on: the allocator's cache and fragments

# Dense (no sparsity) tensor-core TFLOP/s in the precision the pipeline uses there, from the
# vendors' data sheets: bf16, or fp16 on the devices without bf16. The first name contained in
# the device's name wins, so the longer names come first.
PEAK_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("V100", 125.0),  # fp16
    ("T4", 65.0),  # fp16
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--config", type=Path, default=ROOT / "competition.yaml", help="models, folds, TTA")
    parser.add_argument(
        "--image-scale", type=float, default=1.0, help="of 1918x1280, and of every model's size"
    )
    parser.add_argument(
        "--width", type=float, help="every network's channel multiplier (default: the config's)"
    )
    parser.add_argument("--train-steps", type=int, default=5, help="timed steps after the warm-up")
    parser.add_argument("--train-workers", type=int, help="training loader processes (default: each model's)")
    parser.add_argument("--predict-images", type=int, default=32, help="test images timed (whole batches)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4], help="prediction loader processes")
    parser.add_argument("--compile", choices=["both", "off"], default="both", help="also time torch.compile")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8], help="GPUs to project for")
    parser.add_argument("--peak-tflops", type=float, help="this device's dense peak (default: the table's)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", type=Path, default=ROOT / "results/gpu_check.json")
    args = parser.parse_args()
    if args.train_steps < 1 or args.predict_images < 1 or min(args.devices) < 1 or min(args.workers) < 0:
        parser.error("--train-steps, --predict-images and --devices must be at least 1, --workers at least 0")

    config = yaml.safe_load(args.config.read_text())
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the training jobs and the shards set it
        torch.set_float32_matmul_precision("high")
    else:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    specs = [sized(spec, args, device) for spec in model_specs(config["models"])]
    compiles = [False, True] if args.compile == "both" else [False]
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "machine": machine(device),
        "config": str(args.config),
        "image_scale": args.image_scale,
        "image_size": list(scaled_size(args.image_scale)),
        "peak": peak(device, args.peak_tflops),
    }
    stages: dict[str, float] = figures.setdefault("stage_seconds", {})
    with tempfile.TemporaryDirectory(prefix="carvana-gpu-check-") as scratch:
        root = Path(scratch)
        test_cars = math.ceil(args.predict_images / 16)
        generate(
            SyntheticSpec(2, test_cars, scaled_size(args.image_scale), seed=5, workers=os.cpu_count() or 1),
            root / "data",
            root / "truth.csv",
        )
        stages["data"] = time.perf_counter() - started
        paths = DatasetPaths(root / "data")
        cv2.setNumThreads(1)  # as a training job sets it, before its loader's workers fork
        figures["training"] = {}
        for spec in specs:
            begun = time.perf_counter()
            figures["training"][spec.name] = training(spec, paths, device, args.train_steps, compiles)
            stages[f"train {spec.name}"] = time.perf_counter() - begun
            save(figures, args.json)  # what is measured so far, should a later stage fail
        begun = time.perf_counter()
        opencv_threads(device)  # as a prediction shard sets it
        figures["prediction"] = prediction(config, specs, root, device, args, compiles)
        stages["prediction"] = time.perf_counter() - begun
    figures["projection"] = projection(config, figures, args.devices)
    figures["seconds"] = time.perf_counter() - started
    share(figures)
    print_table(figures)
    save(figures, args.json)
    print(f"\nfigures in {args.json}")


def save(figures: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


def sized(spec: ModelSpec, args: argparse.Namespace, device: torch.device) -> ModelSpec:
    """The configured model as measured here: at ``--image-scale`` (its input size scaled; the
    UNet's tile the configured one, or the smallest that covers the scaled image, whichever is
    smaller), at ``--width``, with random weights, on the device measured."""
    spec = spec.at_scale(args.image_scale)
    if spec.tile_size is not None:
        tile = (smallest_tile(spec.input_size[0]), smallest_tile(spec.input_size[1]))
        spec = dataclasses.replace(
            spec, tile_size=(min(spec.tile_size[0], tile[0]), min(spec.tile_size[1], tile[1]))
        )
    workers = spec.workers if args.train_workers is None else args.train_workers
    return dataclasses.replace(
        spec,
        width=spec.width if args.width is None else args.width,
        dropout=spec.dropout if args.width in (None, 1) else 0.0,
        pretrained=False,
        gpu=1 if device.type == "cuda" else 0,
        workers=workers,
    )


def smallest_tile(side: int) -> int:
    """The smallest unpadded-UNet input side (16k + 124) whose output covers ``side`` pixels."""
    return next(t for t in itertools.count(188, 16) if unet_output_size(t) >= side)


# -- the device's peak and memory -------------------------------------------------------------


def peak(device: torch.device, given: float | None) -> dict[str, Any]:
    """The dense TFLOP/s the achieved figures are a share of, and where it comes from."""
    measured = matmul_tflops(device)
    if given is not None:
        return {"tflops": given, "source": "--peak-tflops", "matmul_tflops": measured}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_TFLOPS:
            if key in name:
                return {"tflops": tflops, "source": f"data sheet ({key})", "matmul_tflops": measured}
    return {"tflops": measured, "source": "dense matrix product measured here", "matmul_tflops": measured}


def matmul_tflops(device: torch.device) -> float:
    """TFLOP/s of a large square matrix product in the networks' precision on ``device``: bf16 on
    a GPU (fp16 without it), float32 on a CPU without hardware bf16."""
    dtype = mixed_precision_dtype(device) or torch.float32
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n**3 / best / 1e12


class Memory:
    """Peak memory of what runs between ``reset`` and ``peak_mib``: the caching allocator's peak
    on a GPU; on a CPU the process's resident high-water mark, reset through /proc."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # what was freed goes back: the RSS is what is in use
        with contextlib.suppress(OSError):  # not allowed: the peak is the process's so far
            Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to the current RSS

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024

    def capacity_mib(self) -> float:
        """All of the GPU's memory, or the memory this process may use (cgroup limit or RAM)."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_properties(self.device).total_memory / 2**20
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = Path("/sys/fs/cgroup/memory.max")
        if limit.is_file() and limit.read_text().strip().isdigit():
            total = min(total, int(limit.read_text()))
        return total / 2**20


# -- training ---------------------------------------------------------------------------------


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


# -- prediction -------------------------------------------------------------------------------


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


# -- the projection ---------------------------------------------------------------------------


def projection(config: dict[str, Any], figures: dict[str, Any], devices: list[int]) -> dict[str, Any]:
    """Hours of the whole competition from the measured rates, each stage at its faster setting:
    every model on every fold for its epochs (training, validation, OOF maps), the jobs spread
    over N devices longest first (an ideal schedule: Snakemake's order may be worse), then the
    test set's shards over the same devices. Beside them
    the FLOPs of it all and the hours they take at the device's peak: the limit."""
    folds = int(config.get("folds", {}).get("n_folds", 5))
    held_out = COMPETITION_TRAIN_IMAGES / folds
    trained_on = COMPETITION_TRAIN_IMAGES - held_out
    jobs: dict[str, float] = {}
    setting: dict[str, str] = {}
    total_flops = 0.0
    for name, measured in figures["training"].items():
        best = max(
            (key for key in ("eager", "compiled") if key in measured),
            key=lambda k: measured[k]["images_per_s"],
        )
        train_rate, validate_rate = measured[best]["images_per_s"], measured["validate_images_per_s"]
        epochs = int(measured["epochs"])
        per_epoch = trained_on / train_rate + held_out / validate_rate
        jobs[name] = epochs * per_epoch + held_out / validate_rate  # + the OOF maps
        setting[name] = best
        train, validate = measured["train_flops_per_image"], measured["validate_flops_per_image"]
        total_flops += folds * (epochs * (trained_on * train + held_out * validate) + held_out * validate)
    shards = int(config.get("predict", {}).get("shards", 1))
    test_images = COMPETITION_TEST_IMAGES

    def predicting(run: dict[str, Any]) -> float:
        """Seconds of every shard of the test set on one device with ``run``'s setting: the
        measured ensemble has one network per model, the competition's one per fold, and each
        shard loads (and compiles) them all again."""
        network = 1 / run["forward_images_per_s"]
        per_image = folds * network + max(0.0, 1 / run["images_per_s"] - network)
        once = run["shard_seconds"] + folds * run["first_batch_seconds"]
        return float(test_images * per_image + shards * once)

    fastest = min(figures["prediction"]["runs"], key=predicting)
    predict_seconds = predicting(fastest)
    total_flops += test_images * folds * figures["prediction"]["flops_per_image"]
    hours: dict[str, float] = {}
    for count in sorted(set(devices)):
        training_s = makespan([seconds for seconds in jobs.values() for _ in range(folds)], count)
        predicting_s = math.ceil(shards / count) * predict_seconds / shards
        hours[str(count)] = (training_s + predicting_s) / 3600
    return {
        "folds": folds,
        "train_job_hours": {name: seconds / 3600 for name, seconds in jobs.items()},
        "train_setting": setting,
        "predict_hours_one_device": predict_seconds / 3600,
        "predict_setting": {"compiled": fastest["compiled"], "workers": fastest["workers"]},
        "test_images": test_images,
        "hours_by_devices": hours,
        "flops": total_flops,
        "hours_at_peak": total_flops / (figures["peak"]["tflops"] * 1e12) / 3600,
    }


def makespan(durations: list[float], devices: int) -> float:
    """Wall time of independent jobs on ``devices`` devices, each job to the first free device,
    longest job first."""
    free = [0.0] * devices
    for duration in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def share(figures: dict[str, Any]) -> None:
    """Adds the achieved TFLOP/s and their share of the peak beside every rate."""
    peak_tflops = figures["peak"]["tflops"]

    def achieved(flops_per_image: float, images_per_s: float) -> dict[str, float]:
        tflops = flops_per_image * images_per_s / 1e12
        return {"tflops": tflops, "peak_share": tflops / peak_tflops}

    for measured in figures["training"].values():
        train = measured["train_flops_per_image"]
        for key in ("eager", "compiled"):
            if key in measured:
                rates = measured[key]
                rates["achieved"] = achieved(train, rates["images_per_s"])
                rates["network_achieved"] = achieved(train, rates["network_images_per_s"])
        measured["validate_achieved"] = achieved(
            measured["validate_flops_per_image"], measured["validate_images_per_s"]
        )
    predicted = figures["prediction"]
    for run in predicted["runs"]:
        run["achieved"] = achieved(predicted["flops_per_image"], run["images_per_s"])
        run["forward_achieved"] = achieved(predicted["flops_per_image"], run["forward_images_per_s"])


# -- helpers ----------------------------------------------------------------------------------


def to_device(
    batch: tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)


def release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def print_table(figures: dict[str, Any]) -> None:
    height, width = figures["image_size"]
    peak_ = figures["peak"]
    print(f"\n{figures['machine']}; {width}x{height} images (scale {figures['image_scale']})")
    print(f"peak {peak_['tflops']:.1f} TFLOP/s: {peak_['source']}", end="")
    if peak_["tflops"] != peak_["matmul_tflops"]:
        print(f" (a dense matrix product here: {peak_['matmul_tflops']:.1f})", end="")
    print("\n")
    rows = [("", "images/s", "TFLOP/s", "of peak", "")]
    for name, t in figures["training"].items():
        size = "x".join(map(str, t["input_size"]))
        for key in ("eager", "compiled"):
            if key in t:
                r = t[key]
                rows.append(
                    (
                        f"train {name} {size} batch {t['batch_size']} {t['precision']} {key}",
                        f"{r['images_per_s']:.2f}",
                        f"{r['achieved']['tflops']:.2f}",
                        f"{r['achieved']['peak_share']:.1%}",
                        f"network alone {r['network_images_per_s']:.2f}/s",
                    )
                )
        v = t["validate_achieved"]
        loader = f"its loader ({t['workers']} processes) {t['loader_images_per_s']:.2f}/s"
        rows.append(
            (
                "  validate",
                f"{t['validate_images_per_s']:.2f}",
                f"{v['tflops']:.2f}",
                f"{v['peak_share']:.1%}",
                loader,
            )
        )
        how = "tried" if t["largest_batch_tried"] else "estimated"
        how += ", 16x the batch at most" if t["largest_batch_capped"] else ""
        memory = f"{t['peak_memory_mib']:.0f} MiB at batch {t['batch_size']}"
        rows.append(("  memory", memory, "", "", f"largest batch {t['largest_batch']} ({how})"))
    p = figures["prediction"]
    for run in p["runs"]:
        label = f"predict, {run['workers']} loader processes, {'compiled' if run['compiled'] else 'eager'}"
        alone = f"forward alone {run['forward_images_per_s']:.2f}/s, {run['shard_seconds']:.1f} s a shard"
        rows.append(
            (
                label,
                f"{run['images_per_s']:.2f}",
                f"{run['achieved']['tflops']:.2f}",
                f"{run['achieved']['peak_share']:.1%}",
                f"{alone}, path / forward {run['path_over_forward']:.2f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"(prediction: {p['networks']} networks x {p['views']} views, batch {p['batch_size']})")
    j = figures["projection"]
    at = "" if figures["image_scale"] == 1 else f" at scale {figures['image_scale']}, not the real cost"
    print(f"\nthe whole competition ({j['folds']} folds, {j['test_images']:,} test images), projected{at}:")
    for name, hours in j["train_job_hours"].items():
        print(f"  one {name} training job: {hours:.2f} h ({j['train_setting'][name]})")
    setting = j["predict_setting"]
    how = f"{'compiled' if setting['compiled'] else 'eager'}, {setting['workers']} loader processes"
    print(f"  prediction on one device: {j['predict_hours_one_device']:.2f} h ({how})")
    for count, hours in j["hours_by_devices"].items():
        print(f"  in all on {count} such device(s) (--resources gpu={count}): {hours:.1f} h")
    print(f"  the limit: {j['flops']:.2e} FLOP, {j['hours_at_peak']:.1f} h on one device at its peak")
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in figures["stage_seconds"].items())
    print(f"measured in {figures['seconds']:.0f} s: {stages}")


if __name__ == "__main__":
    main()
