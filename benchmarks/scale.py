"""``make scale``: each stage's cost at the competition's counts, beside what its Slurm job gets.

On generated 1918x1280 images, masks and OOF maps, it runs each CPU-side stage's own command
(``carvana <stage>``, as its rule does) on a sample and on the sample doubled, each in a process
of its own: the difference is the cost per item (an image, a file, a row) on one core, the rest
the fixed cost, and the process's peak resident memory is the stage's. The writer threads of the
GPU stages (OOF PNGs, pseudo-label PNGs, prediction's resize and RLE) are timed in this process.
The GPU stages' network time comes from ``results/gpu_check.json`` where ``make gpu-check`` wrote
one, else from the networks' FLOPs at ``--assumed-tflops`` (marked "assumed"). Disk is worked out
from the sizes of the files the sample wrote.

Prints a table (one job of each rule at the competition's counts on 2, 8, 16 and 32 cores, its
peak memory, its rule's Slurm runtime, memory and CPUs), writes ``results/scale.json``, and exits
1 when a job's projection on the CPUs its Slurm job gets exceeds that job's runtime or memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import yaml

from carvana import rle
from carvana.data.images import read_mask
from carvana.data.synthetic import SyntheticSpec, generate
from carvana.layout import COMPETITION_SIZE, VIEWS_PER_CAR, DatasetPaths, car_of, image_name, scaled_size
from carvana.models.build import build_model
from carvana.models.flops import flops
from carvana.models.inference import resize
from carvana.models.spec import ModelSpec, model_specs
from carvana.prediction.ensemble import add_weighted
from carvana.prediction.oof import write_map
from carvana.prediction.pseudo import uncertain_share, write_label
from carvana.prediction.tta import TTASpec
from carvana.projection import CORES, Counts, NetworkCost, Stage, gpu_stages, judge, read_profile, size, table

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 16  # the sample's prediction and label shards
Run = tuple[float, float]  # wall seconds, peak resident MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
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
        help="of 1918x1280: a smaller sample, its figures not the cost",
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


# -- the sample ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A generated dataset at the competition's size in ``root``/data, with what the stages after
    it read: OOF maps, prediction shards, label shards (made by the functions below)."""

    root: Path
    size: tuple[int, int] = COMPETITION_SIZE  # (height, width) of its images

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def paths(self) -> DatasetPaths:
        return DatasetPaths(self.data)

    def train_names(self) -> list[str]:
        return pd.read_csv(self.paths.train_masks_csv_path)["img"].tolist()

    def test_names(self) -> list[str]:
        return pd.read_csv(self.paths.sample_submission_path)["img"].tolist()

    def images(self) -> int:
        return len(self.train_names()) + len(self.test_names())

    def files(self) -> int:
        """Images and masks: what the import extracts."""
        return 2 * len(self.train_names()) + len(self.test_names())

    @classmethod
    def generated(cls, root: Path, cars: int, size: tuple[int, int] = COMPETITION_SIZE) -> Sample:
        spec = SyntheticSpec(cars, max(1, cars // 2), size, seed=5, workers=os.cpu_count() or 1)
        generate(spec, root / "data", root / "truth.csv")
        return cls(root, size)

    def doubled(self, root: Path) -> Sample:
        """This sample with every car twice, the copy under the id of its hex digits inverted
        (files linked, not copied)."""
        other = Sample(root, self.size)
        for folder in ("train", "train_masks", "test"):
            (other.data / folder).mkdir(parents=True)
            for path in sorted((self.data / folder).iterdir()):
                os.link(path, other.data / folder / path.name)
                os.link(path, other.data / folder / _twin_name(path.name))
        os.link(self.root / "truth.csv", other.root / "truth.csv")  # the test masks' RLE, for rows
        for name in ("train_masks.csv", "sample_submission.csv", "metadata.csv"):
            table = pd.read_csv(self.data / name, dtype=str, keep_default_na=False)
            column = "id" if name == "metadata.csv" else "img"
            twin = table.assign(**{column: [_twin_name(value) for value in table[column]]})
            pd.concat([table, twin]).to_csv(other.data / name, index=False)
        return other

    def zipped(self) -> Path:
        """The dataset as the competition's archives, in a folder of its own."""
        folder = self.root / "archives"
        if not folder.is_dir():
            folder.mkdir()
            for name in (
                "train",
                "train_masks",
                "test",
                "train_masks.csv",
                "metadata.csv",
                "sample_submission.csv",
            ):
                with zipfile.ZipFile(
                    folder / f"{name}.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1
                ) as archive:
                    source = self.data / name
                    for path in sorted(source.rglob("*")) if source.is_dir() else [source]:
                        archive.write(path, str(path.relative_to(self.data)))
        return folder


def _twin(car_id: str) -> str:
    return format(int(car_id, 16) ^ (16**12 - 1), "012x")


def _twin_name(name: str) -> str:
    return name.replace(name[:12], _twin(name[:12]), 1)


def make_maps(sample: Sample, models: list[str]) -> None:
    """Three networks' OOF maps of every training image, with TTA and without, as trained
    networks make them: sure inside and outside the car, unsure over a few pixels at its
    outline, each network's outline shifted a little; two folds by car."""
    names = sample.train_names()
    cars = sorted({car_of(name) for name in names})
    folds = pd.DataFrame({"img": names, "car_id": [car_of(n) for n in names]})
    folds["fold"] = [cars.index(car) % 2 for car in folds["car_id"]]
    folds.to_csv(sample.root / "folds.csv", index=False)
    for name, fold in zip(folds["img"], folds["fold"], strict=True):
        mask = read_mask(sample.paths.mask_path(name))
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
        distance = inside - outside
        for index, model in enumerate(models):
            for folder, shift in (("oof", 0.0), ("oof_plain", 0.4)):
                logit = (distance + 0.6 * (index - 1) + shift) / 1.5
                probability = np.round(255 / (1 + np.exp(-np.clip(logit, -30, 30)))).astype(np.uint8)
                path = sample.root / "models" / model / f"fold{fold}" / folder / name.replace(".jpg", ".png")
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), probability)
    for model in models:
        for fold in (0, 1):
            metrics = pd.DataFrame({"epoch": range(40), "train_loss": 0.1, "val_loss": 0.1, "val_dice": 0.99})
            metrics.to_csv(sample.root / "models" / model / f"fold{fold}" / "metrics.csv", index=False)


def submission_rows(sample: Sample, rows: int) -> None:
    """``rows`` test images' rows (the sample's test masks' RLE, again and again) in SHARDS
    prediction shards and label shards, with a dataset folder that lists them."""
    truth = pd.read_csv(sample.root / "truth.csv", dtype=str, keep_default_na=False)["rle_mask"].tolist()
    names = [
        image_name(f"{car:012x}", view) for car in range(rows // VIEWS_PER_CAR + 1) for view in range(1, 17)
    ]
    table = pd.DataFrame({"img": names[:rows], "rle_mask": [truth[i % len(truth)] for i in range(rows)]})
    data = sample.root / "rows" / "data"
    (data / "test").mkdir(parents=True)
    os.link(sample.paths.image_path("test", sample.test_names()[0]), data / "test" / table["img"].iloc[0])
    table[["img"]].assign(rle_mask="1 1").to_csv(data / "sample_submission.csv", index=False)
    table[["img"]].to_csv(sample.root / "rows" / "images.csv", index=False)
    bounds = np.linspace(0, rows, SHARDS + 1).round().astype(int)
    for index in range(SHARDS):
        part = table.iloc[bounds[index] : bounds[index + 1]]
        part.to_csv(sample.root / "rows" / f"shard_{index + 1}.csv", index=False)
        folder = sample.root / "rows" / "labels" / f"shard_{index + 1}-of-{SHARDS}"
        folder.mkdir(parents=True)
        areas = [rle.area(encoded) for encoded in part["rle_mask"]]
        pd.DataFrame({"img": part["img"], "area": areas, "uncertain": 0.01}).to_csv(
            folder / "labels.csv", index=False
        )


def competition_tables(folder: Path) -> Path:
    """train_masks.csv and metadata.csv of the competition's 318 cars (one mask's RLE for all)."""
    data = folder / "data"
    data.mkdir(parents=True)
    mask = np.zeros(COMPETITION_SIZE, dtype=np.uint8)
    mask[300:1000, 200:1700] = 1
    cars = [f"{car:012x}" for car in range(318)]
    names = [image_name(car, view) for car in cars for view in range(1, VIEWS_PER_CAR + 1)]
    pd.DataFrame({"img": names, "rle_mask": rle.encode(mask)}).to_csv(data / "train_masks.csv", index=False)
    pd.DataFrame({"id": cars, "year": "2017", "make": "Make", "model": "M", "trim1": "", "trim2": ""}).to_csv(
        data / "metadata.csv", index=False
    )
    return data


# -- measuring the stages' commands ------------------------------------------------------------


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
                "import-local",
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
            lambda s: _rows(s),
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
            lambda s: _rows(s),
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
            lambda s: _rows(s),
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


def _rows(sample: Sample) -> int:
    return len(pd.read_csv(sample.root / "rows" / "images.csv"))


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


# -- the GPU stages: their writers here, their networks from gpu_check or their FLOPs -----------


def writer_seconds(sample: Sample, specs: list[ModelSpec], counts: Counts) -> dict[str, float]:
    """One core's seconds per image of each GPU stage's writer thread: an OOF job's two PNGs and
    Dice, a labels job's 1-bit PNG and uncertain share, a prediction shard's resizing of every
    network's map to the image's size, their weighted sum, threshold and RLE."""
    names = sample.train_names()[:8]
    masks = [read_mask(sample.paths.mask_path(name)) for name in names]
    maps = [np.clip(mask + np.float32(0.2), 0, 1).astype(np.float32) for mask in masks]
    out = sample.root / "writers"
    out.mkdir()
    timings: dict[str, float] = {}

    def timed(name: str, work: Callable[[int], None]) -> None:
        started = time.perf_counter()
        for index in range(len(names)):
            work(index)
        timings[name] = (time.perf_counter() - started) / len(names)

    def oof(i: int) -> None:
        for folder in ("oof", "oof_plain"):
            write_map(out / f"{folder}_{i}.png", maps[i], masks[i])

    timed("oof", oof)

    def label(i: int) -> None:
        write_label(out / f"label_{i}.png", maps[i] >= 0.5)
        uncertain_share(maps[i], 0.5, 0.2)

    timed("pseudo_labels", label)
    small = [np.asarray(resize(maps[0], spec.input_size), dtype=np.float32) for spec in specs]

    def finish(i: int) -> None:
        total = np.zeros(sample.size, dtype=np.float32)
        for _ in range(counts.folds):
            for probability in small:
                add_weighted(total, np.asarray(resize(probability, sample.size), dtype=np.float32), 1.0)
        rle.encode(total >= counts.folds * len(small) / 2)

    timed("predict", finish)
    return timings


def network_costs(
    specs: list[ModelSpec], gpu_check: Path, assumed_tflops: float
) -> tuple[dict[str, NetworkCost], str, str]:
    """Each model's seconds per image on one GPU: measured by make gpu-check, or its FLOPs at
    ``assumed_tflops``."""
    if gpu_check.is_file():
        figures = json.loads(gpu_check.read_text())
        device = figures.get("machine", "a GPU")
        costs = {}
        for spec in specs:
            measured = figures["training"][spec.name]
            rate = max(measured[key]["images_per_s"] for key in ("eager", "compiled") if key in measured)
            costs[spec.name] = NetworkCost(spec.epochs, 1 / rate, 1 / measured["validate_images_per_s"])
        if figures.get("image_scale", 1) == 1:
            return costs, "gpu_check", f"measured by make gpu-check on {device}"
    rate = assumed_tflops * 1e12
    costs = {
        spec.name: NetworkCost(spec.epochs, flops(spec, True) / rate, flops(spec, False) / rate)
        for spec in specs
    }
    said = f"assumed: the networks' FLOPs at {assumed_tflops:g} TFLOP/s (no full-size make gpu-check yet)"
    return costs, "assumed", said


def disk_bytes(sample: Sample, specs: list[ModelSpec], counts: Counts) -> dict[str, float]:
    """Disk at the competition's counts, from the sizes of the sample's files."""

    def mean_size(pattern: str, folder: Path) -> float:
        sizes = [path.stat().st_size for path in folder.glob(pattern)]
        return float(np.mean(sizes))

    train, test = counts.train_images, counts.test_images
    jpeg = mean_size("*.jpg", sample.data / "train")
    gif = mean_size("*.gif", sample.data / "train_masks")
    oof = mean_size("*/fold*/oof*/*.png", sample.root / "models")
    label = mean_size("label_*.png", sample.root / "writers")
    rows = sample.root / "rows"
    row = (rows / "submission.csv.gz").stat().st_size / _rows(sample)
    csv_row = sum(path.stat().st_size for path in rows.glob("shard_*.csv")) / _rows(sample)
    checkpoints = 0.0
    for spec in specs:
        parameters = sum(p.numel() for p in build_model(spec, load_pretrained=False).parameters())
        slots = {"adam": 2, "sgd": 1, "rmsprop": 2}.get(spec.optimizer.name, 2)
        checkpoints += (
            counts.folds * parameters * 4 * (2 + slots)
        )  # weights.pt, last.ckpt with the optimizer's
    return {
        "data: archives and their extracted files (the sample's JPEG size; Kaggle's differ)": 2
        * (jpeg * (train + test) + gif * train),
        f"OOF maps ({counts.models} models, with TTA and without)": oof * train * counts.models * 2,
        f"pseudo labels, per round ({counts.folds} folds)": label * test * counts.folds,
        f"checkpoints ({counts.folds} folds of every model: weights.pt, last.ckpt)": checkpoints,
        "prediction shards and the submission": (csv_row + row) * test,
    }


if __name__ == "__main__":
    main()
