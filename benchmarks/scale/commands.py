"""Each CPU-side stage's own command (``carvana <stage>``) run on the sample and on the sample
doubled, each in a process of its own that records its peak memory; the fixed and per-item costs
from the two runs; the CPU-side rules at the competition's counts."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.scale.sample import SHARDS, Sample, competition_tables, make_maps, submission_rows
from carvana.projection import Counts, Stage

Run = tuple[float, float]  # wall seconds, peak resident MiB


# Runs ``carvana`` in this interpreter and, at its exit, writes the process's own peak resident
# memory (VmHWM: ru_maxrss would count the pages of the parent it was forked from).
LAUNCHER = (
    "import atexit, runpy, sys\n"
    "peak = sys.argv.pop(1)\n"
    "def record():\n"
    "    with open('/proc/self/status') as status, open(peak, 'w') as out:\n"
    "        out.write(next(line for line in status if line.startswith('VmHWM')).split()[1])\n"
    "atexit.register(record)\n"
    "sys.argv[0] = 'carvana'\n"
    "runpy.run_module('carvana', run_name='__main__')\n"
)


# A tuning worker's share: a fresh interpreter with the pool's imports scoring two images' maps.
TUNING_WORKER = (
    "import csv, sys\n"
    "from pathlib import Path\n"
    "import numpy as np\n"
    "from carvana.tuning.scan import BlendGroup, Images, ScanPlan, score_chunk\n"
    "from carvana.tuning.blend import simplex_grid\n"
    "models = sys.argv[2:]\n"
    "folds = sorted(csv.DictReader(open('folds.csv')), key=lambda row: row['img'])[:2]\n"
    "truth = {row['img']: row['rle_mask'] for row in csv.DictReader(open(sys.argv[1]))}\n"
    "names = [row['img'] for row in folds]\n"
    "images = Images(names, [int(row['fold']) for row in folds], [truth[name] for name in names])\n"
    "columns = np.append(np.round(0.3 + 0.01 * np.arange(41), 10), 0.5)\n"
    "groups = tuple(BlendGroup(points) for points in (np.full((1, len(models)), 1 / len(models)),) * 2)\n"
    "groups += (BlendGroup(simplex_grid(len(models), 0.1)),)\n"
    "score_chunk(ScanPlan(Path('models'), tuple(models), columns, groups), images)\n"
)


def run(argv: list[str], cwd: Path, code: str = LAUNCHER) -> Run:
    """``carvana <argv>`` (or ``code`` with ``argv``) in a process of its own: (wall seconds, peak
    resident MiB). The process records its own peak when it exits."""
    log, peak = cwd / "stage.log", cwd / "stage.peak"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    record = LAUNCHER.split("sys.argv[0]")[0]  # the launcher's peak recording, before its own work
    program = code if code == LAUNCHER else record + code
    with log.open("w") as output:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", program, str(peak), *argv], cwd=cwd, stdout=output, stderr=output, env=env
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{log.read_text()[-3000:]}")
    return seconds, int(peak.read_text()) / 1024  # kB


def slope(small: Run, large: Run, items: tuple[int, int]) -> dict[str, float]:
    """Fixed and per-item seconds and memory from a run on ``items[0]`` items and one on ``items[1]``."""
    (seconds_a, memory_a), (seconds_b, memory_b) = small, large
    count_a, count_b = items
    if count_a == count_b:  # a stage whose work does not grow with the sample: its mean, fixed
        return {
            "per_item_s": 0.0,
            "fixed_s": (seconds_a + seconds_b) / 2,
            "memory_mib": max(memory_a, memory_b),
            "memory_per_item_mib": 0.0,
            "items": float(count_b),
        }
    per_item = max(0.0, (seconds_b - seconds_a) / (count_b - count_a))
    return {
        "per_item_s": per_item,
        "fixed_s": max(0.0, seconds_a - per_item * count_a),
        "memory_mib": memory_b,
        "memory_per_item_mib": max(0.0, (memory_b - memory_a) / (count_b - count_a)),
        "items": float(count_b),
    }


def measure(small: Sample, large: Sample, config: dict[str, Any], rows: int, root: Path) -> dict[str, Any]:
    """Each CPU-side stage's figures (``slope``) from its command on both samples."""
    models = list(config["models"])
    for sample, count in ((small, rows), (large, 4 * rows)):
        make_maps(sample, models)
        submission_rows(sample, count)
    grid = config["tune"]["thresholds"]
    weights = config["ensemble"]["weights"]
    weight_args = (
        ["--auto-weights"] if weights == "auto" else [f"--weight={m}={w}" for m, w in weights.items()]
    )
    decode = ["--decode-test"] if config["validate_data"]["decode_test"] else []
    commands: dict[str, tuple[Callable[[Sample], list[str]], Callable[[Sample], int]]] = {
        "import": (
            lambda s: [
                "import-files",
                "--source-dir",
                str(s.zipped()),
                "--data-dir",
                str(s.root / "imported"),
            ],
            Sample.files,
        ),
        "validate_data": (
            lambda s: [
                "validate-data",
                "--data-dir",
                str(s.data),
                "--report-path",
                "report.json",
                "--workers",
                "1",
                "--image-size",
                *map(str, s.size),
                *decode,
            ],
            Sample.images,
        ),
        "tune_threshold": (
            lambda s: [
                "tune-threshold",
                "--data-dir",
                str(s.data),
                "--folds-path",
                "folds.csv",
                "--models-dir",
                "models",
                "--out-dir",
                "tuning",
                "--thresholds",
                *map(str, (grid["start"], grid["stop"], grid["step"])),
                *(f"--model={m}" for m in models),
                *weight_args,
                "--threads",
                "1",
            ],
            lambda s: len(s.train_names()),
        ),
        "report_figures": (
            lambda s: [
                "report-figures",
                "--data-dir",
                str(s.data),
                "--models-dir",
                "models",
                "--tuning-dir",
                "tuning",
                "--out-dir",
                "report",
                "--config-json",
                "{}",
                "--worst",
                "10",
                "--metrics-path",
                *map(str, sorted((s.root / "models").glob("*/fold*/metrics.csv"))),
            ],
            lambda s: len(s.train_names()),
        ),
        "pseudo_rounds": (
            lambda s: ["pseudo-rounds", "--round-dir", ".", "--out-path", "rounds.csv"],
            lambda s: 1,
        ),
        "submission": (
            lambda s: [
                "submission",
                "--data-dir",
                "rows/data",
                "--out-path",
                "rows/submission.csv.gz",
                "--shard-path",
                *(f"rows/shard_{i}.csv" for i in range(1, SHARDS + 1)),
            ],
            Sample.rows,
        ),
        "validate_submission": (
            lambda s: [
                "validate-submission",
                "--submission-path",
                "rows/submission.csv.gz",
                "--data-dir",
                "rows/data",
                "--report-path",
                "rows/check.json",
            ],
            Sample.rows,
        ),
        "pseudo_labels_table": (
            lambda s: [
                "pseudo-labels-table",
                "--data-dir",
                "rows/data",
                "--out-path",
                "rows/labels/labels.csv",
                "--shard-dir",
                *(f"rows/labels/shard_{i}-of-{SHARDS}" for i in range(1, SHARDS + 1)),
            ],
            Sample.rows,
        ),
    }
    measured: dict[str, Any] = {}
    print("each stage's command on the sample and on the sample doubled (rows: four times):", flush=True)
    for name, (command, items) in commands.items():
        runs = [run(command(sample), sample.root) for sample in (small, large)]
        measured[name] = slope(runs[0], runs[1], (items(small), items(large)))
        print(f"  {name}: {runs[0][0]:.1f} s and {runs[1][0]:.1f} s", flush=True)
    _, worker = run([str(small.paths.train_masks_csv_path), *models], small.root, TUNING_WORKER)
    measured["tune_threshold"]["worker_memory_mib"] = worker
    full = competition_tables(root / "folds")
    n_folds = str(config["folds"]["n_folds"])
    seconds, memory = run(
        ["make-folds", "--data-dir", str(full), "--folds-path", "folds.csv", "--n-folds", n_folds], full
    )
    measured["make_folds"] = {
        "per_item_s": 0.0,
        "fixed_s": seconds,
        "memory_mib": memory,
        "memory_per_item_mib": 0.0,
        "items": 0.0,
    }
    return measured


def cpu_stages(measured: dict[str, Any], counts: Counts, tune_threads: int) -> list[Stage]:
    """The CPU-side rules at the competition's counts, from the measured figures."""
    train, test = counts.train_images, counts.test_images

    def stage(rule: str, key: str, jobs: int, items: float, parallel: bool = False) -> Stage:
        m = measured[key]
        memory = m["memory_mib"] + m["memory_per_item_mib"] * max(0.0, items - m["items"])
        return Stage(rule, jobs, items, m["per_item_s"], m["fixed_s"], memory, "measured", parallel)

    tune = stage("tune_threshold", "tune_threshold", 1, train, parallel=True)
    return [
        stage("import_kaggle", "import", 1, 2 * train + test),
        stage("validate_data", "validate_data", 1, train + test, parallel=True),
        stage("make_folds", "make_folds", 1, 0),
        Stage(
            tune.rule,
            1,
            train,
            tune.per_item_s,
            tune.fixed_s,
            tune_memory(measured, counts, tune_threads),
            "measured",
            True,
        ),
        stage("submission", "submission", 1, test),
        stage("validate_submission", "validate_submission", 1, test),
        stage("report_figures", "report_figures", 1, train),
        stage("pseudo_labels_table", "pseudo_labels_table", counts.folds, test),
        stage("pseudo_rounds", "pseudo_rounds", 1, 1),
    ]


def tune_memory(measured: dict[str, Any], counts: Counts, threads: int) -> float:
    """Tuning's peak with ``threads`` worker processes: the sample's on one thread, its per-image
    curves grown to the competition's images (every blend of the weight grid at step 0.1 and the
    equal and given weights, each model with and without TTA, at 41 thresholds and 0.5, 8 bytes
    each), and each worker's own."""
    blends = math.comb(10 + counts.models - 1, counts.models - 1) + 2
    per_image_mib = (blends + 2 * counts.models) * 42 * 8 / 2**20
    m = measured["tune_threshold"]
    workers = threads * m["worker_memory_mib"] if threads > 1 else 0.0
    return float(m["memory_mib"] + per_image_mib * (counts.train_images - m["items"]) + workers)
