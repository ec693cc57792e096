"""``python -m benchmarks.gpu_check`` (``make gpu-check``): the arguments, the measurements in
turn (each model's training, then prediction), the projection, the table and the JSON, saved after
each model should a later one fail. ``make scale`` reads the JSON (``results/gpu_check.json``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import torch
import yaml

import benchmarks.gpu_check
from benchmarks.gpu_check.device import peak
from benchmarks.gpu_check.models import sized
from benchmarks.gpu_check.prediction import prediction
from benchmarks.gpu_check.projection import projection, share
from benchmarks.gpu_check.table import print_table
from benchmarks.gpu_check.training import training
from benchmarks.timing import machine
from carvana.competition import COMPETITION_SIZE_TEXT
from carvana.data.synthetic import SyntheticSpec, generate
from carvana.layout import DatasetPaths, scaled_size
from carvana.models.spec import model_specs
from carvana.prediction.ensemble import opencv_threads

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description=benchmarks.gpu_check.__doc__.splitlines()[0].strip("`"),
    )
    parser.add_argument("--config", type=Path, default=ROOT / "competition.yaml", help="models, folds, TTA")
    parser.add_argument(
        "--image-scale",
        type=float,
        default=1.0,
        help=f"of {COMPETITION_SIZE_TEXT}, and of every model's size",
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


if __name__ == "__main__":
    main()
