"""``python -m benchmarks.scale`` (``make scale``): the arguments, the sample and its measurements,
the projection of every stage against the Slurm profile, the table, the JSON and the exit status."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

import benchmarks.scale
from benchmarks.scale.commands import cpu_stages, measure
from benchmarks.scale.costs import disk_bytes, network_costs, writer_seconds
from benchmarks.scale.sample import SHARDS, Sample
from carvana.competition import COMPETITION_SIZE_TEXT
from carvana.layout import scaled_size
from carvana.models.spec import model_specs
from carvana.prediction.tta import TTASpec
from carvana.projection import CORES, Counts, gpu_stages, judge, read_profile, size, table

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=benchmarks.scale.__doc__.splitlines()[0].strip("`")
    )
    parser.add_argument(
        "--config", type=Path, default=ROOT / "competition.yaml", help="folds, models, shards"
    )
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles/slurm/config.yaml")
    parser.add_argument("--gpu-check", type=Path, default=ROOT / "results/gpu_check.json")
    parser.add_argument("--assumed-tflops", type=float, default=100.0, help="one GPU without gpu_check")
    parser.add_argument("--cars", type=int, default=2, help="training cars of the sample (16 images each)")
    parser.add_argument("--rows", type=int, default=1600, help="submission rows of the sample")
    parser.add_argument(
        "--image-scale",
        type=float,
        default=1.0,
        help=f"of {COMPETITION_SIZE_TEXT}: a smaller sample, its figures not the cost",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "results/scale.json")
    args = parser.parse_args()
    if args.cars < 2 or args.rows < SHARDS:
        parser.error(f"--cars must be at least 2 and --rows at least {SHARDS}")
    config = yaml.safe_load(args.config.read_text())
    counts = Counts.of_config(config)
    specs = model_specs(config["models"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="carvana-scale-") as scratch:
        root = Path(scratch)
        height, width = scaled_size(args.image_scale)
        print(f"generating {args.cars} training cars at {width}x{height} ...", flush=True)
        small = Sample.generated(root / "a", args.cars, (height, width))
        large = small.doubled(root / "b")
        measured = measure(small, large, config, args.rows, root)
        writers = writer_seconds(small, specs, counts)
        disk = disk_bytes(small, specs, counts)
    networks, source, said = network_costs(specs, args.gpu_check, args.assumed_tflops)
    views = len(
        TTASpec(**{**config["predict"]["tta"], "scales": tuple(config["predict"]["tta"]["scales"])}).views()
    )
    views *= len(config["predict"]["tta"]["scales"])
    train, oof, predict, labels = gpu_stages(counts, networks, views, source, writers)
    profile = read_profile(args.profile)
    tuning = profile.of("tune_threshold")
    stages = cpu_stages(measured, counts, tuning.threads or tuning.cpus)
    stages = [*stages[:3], train, oof, stages[3], predict, *stages[4:7], labels, *stages[7:]]
    verdicts = judge(stages, profile)
    problems = [problem for verdict in verdicts for problem in verdict.problems]
    figures = {
        "machine": machine(),
        "config": str(args.config),
        "counts": {**vars(counts), "held_out": counts.held_out},
        "gpu_stages": said,
        "measured": measured,
        "writer_s_per_image": writers,
        "stages": [
            {
                **{"rule": v.stage.rule, "jobs": v.stage.jobs, "items_per_job": v.stage.items},
                **{
                    "fixed_s": v.stage.fixed_s,
                    "per_item_s": v.stage.per_item_s,
                    "parallel": v.stage.parallel,
                },
                "seconds_by_cores": {str(n): v.stage.seconds(n) for n in CORES},
                **{"memory_mib": v.stage.memory_mib, "source": v.stage.source, "slurm": vars(v.allowance)},
                **{"seconds_on_slurm_cpus": v.seconds, "problems": v.problems},
            }
            for v in verdicts
        ],
        "disk_bytes": disk,
        "seconds": time.perf_counter() - started,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"\n{figures['machine']}: one job of each rule at the competition's counts "
        f"({counts.train_images:,} training images in {counts.folds} folds, {counts.models} models, "
        f"{counts.test_images:,} test images in {counts.shards} shards); GPU stages {said}\n"
    )
    print("\n".join(table(verdicts)))
    print("\ndisk:\n" + "\n".join(f"  {what}: {size(count)}" for what, count in disk.items()))
    print(f"\nmeasured in {figures['seconds']:.0f} s; figures in {args.json}")
    if problems:
        print("\n" + "\n".join(problems), file=sys.stderr)
        sys.exit(1)


def machine() -> str:
    """This CPU's model, its vector instructions and its cores."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    name = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine()
    )
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({simd}), {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
