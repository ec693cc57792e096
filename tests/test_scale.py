"""``make scale`` (benchmarks/scale/, carvana.projection): its arithmetic by hand, and the whole
benchmark on a small sample, every stage of the competition present and a job over its Slurm
runtime named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.scale.commands import slope, tune_memory
from carvana.projection import (
    Allowance,
    Counts,
    NetworkCost,
    SlurmProfile,
    Stage,
    gpu_stages,
    judge,
    read_profile,
)

ROOT = Path(__file__).resolve().parents[1]


def test_a_stage_splits_its_items_over_the_cores_only_where_it_is_parallel() -> None:
    # 10 s fixed and 100 items of 0.5 s: 60 s on one core; over 4 cores 10 + 50 / 4
    parallel = Stage("tune_threshold", 1, 100, 0.5, 10.0, None, "measured", parallel=True)
    assert [parallel.seconds(n) for n in (1, 4)] == [60.0, 22.5]
    assert Stage("submission", 1, 100, 0.5, 10.0, None, "measured").seconds(4) == 60.0


def test_the_profiles_resources_are_each_rules_own_over_the_defaults(tmp_path: Path) -> None:
    profile = {
        "default-resources": {"runtime": 60, "mem_mb": 8000, "cpus_per_task": 2},
        "set-resources": {"tune_threshold": {"runtime": 30, "cpus_per_task": 16}},
        "set-threads": {"tune_threshold": 12},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(profile))
    read = read_profile(tmp_path / "config.yaml")
    assert read.of("tune_threshold") == Allowance(30, 8000, 16, 12)
    assert read.of("make_folds") == Allowance(60, 8000, 2, None)


def test_a_job_over_its_runtime_or_memory_is_named_with_what_to_raise() -> None:
    profile = SlurmProfile(Allowance(60, 8000, 2), {"tune_threshold": Allowance(1, 1000, 8, 4)})
    stages = [
        # on its 4 threads: 10 + 0.5 * 400 / 4 = 60 s, exactly its minute: fits
        Stage("tune_threshold", 1, 400, 0.5, 10.0, 999.0, "measured", parallel=True),
        Stage("submission", 1, 0, 0.0, 3601.0, 9000.0, "measured"),  # over an hour and 8 GB
    ]
    tune, submission = judge(stages, profile)
    assert tune.seconds == 60.0 and tune.problems == []
    assert submission.seconds == 3601.0
    assert submission.problems == [
        "submission: one job projected at 60.0 min on 2 CPUs, over its Slurm runtime of 60 min: "
        "raise set-resources submission: runtime",
        "submission: one job projected at 9,000 MiB, over its Slurm mem_mb of 8,000: "
        "raise set-resources submission: mem_mb",
    ]


def test_the_gpu_stages_from_each_networks_seconds_per_image_worked_out_by_hand() -> None:
    """5 folds of 5,000 training images (1,000 held out), 1,000 test images in 4 shards, two
    models, flip TTA (2 views)."""
    counts = Counts(folds=5, models=2, shards=4, train_images=5000, test_images=1000)
    networks = {"a": NetworkCost(10, 0.01, 0.004), "b": NetworkCost(3, 0.05, 0.02)}
    writers = {"oof": 0.001, "predict": 0.002, "pseudo_labels": 0.5}
    train, oof, predict, labels = gpu_stages(counts, networks, 2, "assumed", writers)
    # a: 10 * (4000 * 0.01 + 1000 * 0.004) = 440 s; b: 3 * (4000 * 0.05 + 1000 * 0.02) = 660 s
    assert train.fixed_s == pytest.approx(660) and train.jobs == 10 and train.note == "b, the slowest"
    assert oof.fixed_s == pytest.approx(1000 * 3 * 0.02)  # b's held-out images, 2 views and alone
    # 250 images a shard through 5 folds x (0.004 + 0.02) x 2 views
    assert predict.fixed_s == pytest.approx(250 * 5 * 0.024 * 2) and predict.jobs == 4
    # a fold's networks alone would take 250 * 0.048 = 12 s; the writer's 0.5 s an image sets the pace
    assert labels.fixed_s == pytest.approx(250 * 0.5) and labels.jobs == 20


def test_fixed_and_per_item_costs_from_two_runs() -> None:
    figures = slope((12.0, 200.0), (22.0, 300.0), (10, 30))
    assert figures == {
        "per_item_s": 0.5,
        "fixed_s": 7.0,
        "memory_mib": 300.0,
        "memory_per_item_mib": 5.0,
        "items": 30.0,
    }


def test_tunings_memory_grows_by_its_curves_and_its_workers() -> None:
    """3 models: 66 blends of the grid, equal and given weights, each model with and without TTA:
    74 curves of 42 columns, 8 bytes each, per image, beyond the sample's 64 images."""
    measured = {"tune_threshold": {"memory_mib": 300.0, "items": 64.0, "worker_memory_mib": 150.0}}
    counts = Counts(folds=5, models=3, shards=16)
    curves = 74 * 42 * 8 * (5088 - 64) / 2**20
    assert tune_memory(measured, counts, 1) == pytest.approx(300 + curves)
    assert tune_memory(measured, counts, 8) == pytest.approx(300 + curves + 8 * 150)


@pytest.mark.slow
def test_the_benchmark_projects_every_stage_and_names_a_job_over_its_runtime(tmp_path: Path) -> None:
    """On images at 0.05 of the competition's size (so a minute, not the figures of the real
    cost), through a copy of the Slurm profile that gives make_folds a tenth of a second."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    profile["set-resources"]["make_folds"]["runtime"] = 0.1 / 60
    (tmp_path / "slurm.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "scale.json"
    small = ["--image-scale", "0.05", "--rows", "64", "--profile", str(tmp_path / "slurm.yaml")]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *small, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("make_folds: one job projected at")
    figures = json.loads(out.read_text())
    stages = {stage["rule"]: stage for stage in figures["stages"]}
    assert list(stages) == [
        *("import_kaggle", "validate_data", "make_folds", "train", "oof", "tune_threshold", "predict"),
        *("submission", "validate_submission", "report_figures", "pseudo_labels", "pseudo_labels_table"),
        "pseudo_rounds",
    ]
    assert [rule for rule, stage in stages.items() if stage["problems"]] == ["make_folds"]
    assert stages["tune_threshold"]["slurm"]["cpus"] == 16 and stages["tune_threshold"]["parallel"]
    assert stages["predict"]["jobs"] == 16 and stages["pseudo_labels"]["jobs"] == 80
    for rule, stage in stages.items():
        assert all(seconds > 0 for seconds in stage["seconds_by_cores"].values()), rule
        assert stage["source"] in ("measured", "assumed"), rule
    assert "assumed" in figures["gpu_stages"] and len(figures["disk_bytes"]) == 5
    assert all(size > 0 for size in figures["disk_bytes"].values())
    assert "make_folds" in done.stdout and "disk:" in done.stdout
