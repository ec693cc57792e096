"""The benchmark harness: prediction throughput (the shard's path beside the pure forward of the
same networks on the same batches and beside a naive loop, all in this run), RLE speed, training
speed per architecture, the DAG's planning time, and a prediction shard's peak memory.

Run: ``make bench`` (``.venv/bin/python -m benchmarks.harness`` in the repository root). The
networks are the config's models with random weights (speed does not depend on them); the data is
generated at ``--image-scale`` of the competition's 1918x1280. Prints a table and writes JSON
(``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from benchmarks.naive_predict import kernel_rle, naive_predict
from benchmarks.timing import machine, synchronize, timed
from benchmarks.weights import config_weights, random_weights
from carvana import rle
from carvana.competition import COMPETITION_SIZE, COMPETITION_SIZE_TEXT
from carvana.data.images import read_image
from carvana.data.synthetic import SyntheticSpec, generate
from carvana.data.synthetic_car import random_car
from carvana.data.synthetic_render import render_view
from carvana.layout import DatasetPaths, scaled_size
from carvana.models.inference import mixed_precision_dtype
from carvana.models.spec import ModelSpec, model_specs
from carvana.prediction.ensemble import Ensemble, load_member, opencv_threads, read_member
from carvana.prediction.shard import ShardSpec, stream
from carvana.prediction.stream import batches
from carvana.prediction.tta import TTASpec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml", help="models, TTA, weights")
    parser.add_argument(
        "--image-scale", type=float, default=1.0, help=f"of {COMPETITION_SIZE_TEXT}; 0.5 for a quick run"
    )
    parser.add_argument("--images", type=int, default=128, help="test images timed (whole cars of 16)")
    parser.add_argument("--folds", type=int, default=1, help="networks per model in the ensemble")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--pairs", type=int, default=5, help="path and forward timings, taken in turns")
    parser.add_argument("--workers", type=int, help="loader processes of the path (default: the config's)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", type=Path, default=ROOT / "results/harness.json")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    predict = config.get("predict", {})
    tta = predict.get("tta", {})
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    torch.set_num_threads(int(predict.get("threads", 1)))
    opencv_threads(device)  # as in ``carvana predict``
    specs = model_specs(config["models"])
    figures: dict[str, Any] = {
        "machine": machine(device),
        "config": str(args.config),
        "image_size": list(scaled_size(args.image_scale)),
        "models": [spec.name for spec in specs],
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory(prefix="carvana-bench-") as scratch:
        root = Path(scratch)
        cars = max(1, math.ceil(args.images / 16))
        generate(
            SyntheticSpec(train_cars=2, test_cars=cars, image_size=scaled_size(args.image_scale), seed=5),
            root / "data",
            root / "truth.csv",
        )
        weights_paths = random_weights(specs, args.folds, root)
        shard = ShardSpec(
            1,
            1,
            batch_size=int(predict.get("batch_size", 8)),
            tta=TTASpec(
                bool(tta.get("hflip", True)), bool(tta.get("vflip", False)), tuple(tta.get("scales", [1.0]))
            ),
            gpu=1 if device.type == "cuda" else 0,
            workers=predict.get("workers", 0) if args.workers is None else args.workers,
        )
        weights = config_weights(config)
        figures["prediction"] = prediction(shard, root, weights_paths, device, args.pairs, weights)
        figures["peak_memory"] = peak_memory(shard, root, weights_paths)
        figures["training"] = training(specs, root, device, args.train_steps)
    figures["rle"] = rle_speed()
    figures["dag"] = dag_time()
    print_table(figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures in {args.json}")


def prediction(
    shard: ShardSpec,
    root: Path,
    weights_paths: list[Path],
    device: torch.device,
    pairs: int,
    weights: dict[str, float],
) -> dict[str, Any]:
    """Images/s of the shard's whole path, of the networks' forward alone on the same batches,
    and of the naive loop; the ratios between them. The path and the forward are timed ``pairs``
    times in turns and the best of each kept: a shared machine only ever slows a run down."""
    paths = DatasetPaths(root / "data")
    names = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    out = root / "fast.csv"
    members = [load_member(path, device) for path in weights_paths]
    ensemble = Ensemble(members, shard.tta, device, mixed_precision_dtype(device), weights)
    # every batch prepared ahead (pinned on a GPU, as the shard's loader gives them)
    prepared = [
        ensemble.prepare([read_image(paths.image_path("test", name)) for name in batch])
        for batch in batches(names, shard.batch_size)
    ]
    if device.type == "cuda":
        prepared = [batch.pin_memory() for batch in prepared]
    # the shard's per-image path (its set-up, reading the weights, is once per shard) and the
    # networks alone, taken in turns so that a busy moment of the machine hits both alike
    fast, forward = math.inf, math.inf
    for _ in range(pairs):
        path = partial(stream, ensemble, paths, names, shard.batch_size, 0.5, out, workers=shard.workers)
        fast = min(fast, timed(path, device, 1))
        forward = min(forward, timed(lambda: [ensemble.forward(batch) for batch in prepared], device, 1))

    plain = [read_member(path) for path in weights_paths]  # float32, contiguous, unbatched
    for member in plain:
        member.network.to(device)
    naive_out = root / "naive.csv"
    images = [paths.image_path("test", name) for name in names]
    naive = timed(
        lambda: naive_predict(images, plain, shard.tta, weights, 0.5, naive_out, device=device),
        device,
        repeats=1,
    )
    agreement = mask_agreement(out, naive_out, tuple(read_image(images[0]).shape[:2]))
    count = len(names)
    return {
        "images": count,
        "batch_size": shard.batch_size,
        "loader_workers": shard.workers,
        "networks": len(members),
        "views": len(shard.tta.views()) * len(shard.tta.scales),
        "fast_images_per_s": count / fast,
        "forward_images_per_s": count / forward,
        "naive_images_per_s": count / naive,
        "fast_over_forward": fast / forward,
        "naive_over_fast": naive / fast,
        "fast_naive_pixel_agreement": agreement,
    }


def mask_agreement(fast: Path, naive: Path, shape: tuple[int, int]) -> float:
    """The share of pixels on which two submissions agree (bf16 beside float32 networks)."""
    a, b = pd.read_csv(fast).fillna(""), pd.read_csv(naive).fillna("")
    same = [
        float((rle.decode(x, shape) == rle.decode(y, shape)).mean())
        for x, y in zip(a["rle_mask"], b["rle_mask"], strict=True)
    ]
    return float(np.mean(same))


def peak_memory(shard: ShardSpec, root: Path, weights_paths: list[Path]) -> dict[str, Any]:
    """Peak resident memory of ``carvana predict`` (a process of its own) on half and on all of
    the test images: it must not grow with the number of images."""
    figures: dict[str, dict[str, float]] = {}
    for count, label in ((2, "half"), (1, "all")):
        command = [sys.executable, "-m", "carvana", "predict", "--shard", "1", "--shards", str(count)]
        command += ["--data-dir", str(root / "data"), "--weights", *map(str, weights_paths)]
        command += [
            "--thresholds-path",
            str(root / "thresholds.json"),
            "--out-path",
            str(root / f"{label}.csv"),
        ]
        command += ["--batch-size", str(shard.batch_size), "--gpu", str(shard.gpu), "--scales"]
        command += [str(scale) for scale in shard.tta.scales]
        command += [
            "--hflip" if shard.tta.hflip else "--no-hflip",
            "--vflip" if shard.tta.vflip else "--no-vflip",
        ]
        command += [
            "--workers",
            str(shard.workers),
            "--threads",
            str(torch.get_num_threads() + shard.workers),
        ]
        probe = "import resource, subprocess, sys; "
        probe += "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        probe += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        result = subprocess.run(
            [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True
        )
        images = len(pd.read_csv(root / f"{label}.csv"))
        figures[label] = {"images": images, "peak_mib": int(result.stdout.strip()) / 1024}
    return {**figures, "growth": figures["all"]["peak_mib"] / figures["half"]["peak_mib"]}


def training(specs: list[ModelSpec], root: Path, device: torch.device, steps: int) -> dict[str, Any]:
    """Training images/s per model at its configured size: data loading, augmentation, forward,
    backward and the optimizer's step, as the training job runs them."""
    from torch.utils.data import DataLoader

    from carvana.training.data import SegmentationDataset
    from carvana.training.job import choose_device
    from carvana.training.task import SegmentationTask

    paths = DatasetPaths(root / "data")
    names = sorted(path.name for path in paths.train_dir.glob("*.jpg"))
    figures = {}
    for spec in specs:
        chosen = choose_device(spec if device.type == "cuda" else ModelSpec.from_json(_on_cpu(spec)))
        task = SegmentationTask(spec.to_json()).to(device)
        optimizer = task.configure_optimizers()
        optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        loader = DataLoader(
            SegmentationDataset(paths, names, spec, train=True),
            batch_size=spec.batch_size,
            shuffle=True,
            num_workers=spec.workers,
        )
        batches = iter(loader)
        autocast = chosen.autocast_dtype
        seconds = 0.0
        for number in range(steps + 1):  # the first is a warm-up
            started = time.perf_counter()
            train_step(task, optimizer, next(batches), device, autocast)
            synchronize(device)
            seconds += (time.perf_counter() - started) if number else 0.0
        figures[spec.name] = {
            "arch": spec.arch,
            "input_size": list(spec.input_size),
            "batch_size": spec.batch_size,
            "precision": chosen.precision,
            "images_per_s": steps * spec.batch_size / seconds,
        }
    return figures


def train_step(
    task: Any,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    autocast: torch.dtype | None,
) -> None:
    inputs = batch[0].to(device).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        loss = task.loss(task.network(inputs), batch[1].to(device))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def _on_cpu(spec: ModelSpec) -> str:
    data = json.loads(spec.to_json())
    data["gpu"] = 0
    return json.dumps(data)


def rle_speed(repeats: int = 30) -> dict[str, Any]:
    """Microseconds to encode a full-size 1918x1280 mask, the share spent writing the string, and
    the kernel encoder beside it."""
    rng = np.random.default_rng(0)
    masks = [render_view(random_car(rng, f"{i:012x}"), 1 + 3 * i, COMPETITION_SIZE, rng)[1] for i in range(4)]

    def median_us(function: Callable[[np.ndarray], object], arguments: list[np.ndarray]) -> float:
        times = []
        for _ in range(repeats):
            for argument in arguments:
                start = time.perf_counter()
                function(argument)
                times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e6)

    encode, kernel = median_us(rle.encode, masks), median_us(kernel_rle, masks)
    # the two halves of encode timed apart: a difference of two medians can come out negative
    numbers = median_us(rle.runs, masks)
    string = median_us(rle.text, [rle.runs(mask) for mask in masks])
    return {
        "encode_us": encode,
        "string_share": string / (numbers + string),
        "kernel_us": kernel,
        "kernel_over_encode": kernel / encode,
    }


def dag_time() -> dict[str, Any]:
    """Seconds of ``snakemake -n`` with the competition config, in a copy of the workflow."""
    with tempfile.TemporaryDirectory(prefix="carvana-dag-") as scratch:
        work = Path(scratch)
        for name in ("Snakefile", "config.yaml", "competition.yaml"):
            shutil.copy(ROOT / name, work)
        for name in ("workflow", "envs", "profiles"):
            shutil.copytree(ROOT / name, work / name)
        command = [sys.executable, "-m", "snakemake", "-n", "--configfile", "competition.yaml"]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    return {
        "seconds": seconds,
        "jobs": int(jobs.get("total", 0)),
        "train": int(jobs.get("train", 0)),
        "predict": int(jobs.get("predict", 0)),
    }


def print_table(figures: dict[str, Any]) -> None:
    p = figures["prediction"]
    height, width = figures["image_size"]
    print(f"\n{figures['machine']}; {width}x{height} images; {figures['threads']} torch thread(s)")
    loader = f"{p['loader_workers']} loader processes" if p["loader_workers"] else "a loader thread"
    print(
        f"\nprediction: {p['images']} images, {p['networks']} networks x {p['views']} views, "
        f"batch {p['batch_size']}, {loader}"
    )
    rows = [
        ("shard path (decode..write)", f"{p['fast_images_per_s']:.2f} images/s"),
        ("networks' forward alone", f"{p['forward_images_per_s']:.2f} images/s"),
        ("naive loop", f"{p['naive_images_per_s']:.2f} images/s"),
        ("path / forward time", f"{p['fast_over_forward']:.3f}x (target <= 1.10)"),
        ("naive / path time", f"{p['naive_over_fast']:.2f}x (target >= 3)"),
        ("pixels agreeing with naive", f"{p['fast_naive_pixel_agreement']:.5f}"),
    ]
    r = figures["rle"]
    rows += [
        (f"RLE encode {COMPETITION_SIZE_TEXT}", f"{r['encode_us']:.0f} us (target <= 1000)"),
        ("  of which the string", f"{r['string_share']:.0%}"),
        ("  kernel encoder", f"{r['kernel_us']:.0f} us ({r['kernel_over_encode']:.1f}x)"),
    ]
    for name, t in figures["training"].items():
        rows.append(
            (
                f"train {name} {t['input_size'][0]}x{t['input_size'][1]}",
                f"{t['images_per_s']:.2f} images/s ({t['precision']}, batch {t['batch_size']})",
            )
        )
    d, m = figures["dag"], figures["peak_memory"]
    rows += [
        (f"snakemake -n, competition ({d['jobs']} jobs)", f"{d['seconds']:.1f} s"),
        (f"shard peak memory, {m['half']['images']} images", f"{m['half']['peak_mib']:.0f} MiB"),
        (
            f"shard peak memory, {m['all']['images']} images",
            f"{m['all']['peak_mib']:.0f} MiB ({m['growth']:.2f}x)",
        ),
    ]
    width_left = max(len(row[0]) for row in rows)
    for left, right in rows:
        print(f"{left:<{width_left}}  {right}")


if __name__ == "__main__":
    main()
