"""The workflow profiles: the default one's GPU budget, and the Slurm one, by dry runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from workflow_runs import ROOT, TINY, TINY_MODELS, environ, snakemake, workflow_copy


def _gpus_per_train_job(output: str) -> set[str]:
    return set(re.findall(r"carvana with-gpus --gpus (\d+) --asked (\d+) -- carvana train", output))


def _tiny(tmp_path: Path, gpu: int) -> Path:
    models = {name: {**entry, "gpu": gpu} for name, entry in TINY_MODELS.items()}
    return workflow_copy(tmp_path, {**TINY, "models": models})


def test_the_default_profile_gives_each_job_the_gpus_of_this_machine(tmp_path: Path) -> None:
    work = _tiny(tmp_path, gpu=2)
    three = snakemake(work, "-n", "-p", env=environ(work, CARVANA_GPU_DEVICES="0,1,2"))
    assert _gpus_per_train_job(three.stdout) == {("2", "2")}
    assert "warning" not in three.stderr


def test_no_gpu_means_every_network_job_runs_on_the_cpu(tmp_path: Path) -> None:
    work = _tiny(tmp_path, gpu=1)
    none = snakemake(work, "-n", "-p", env=environ(work, CUDA_VISIBLE_DEVICES=""))
    assert _gpus_per_train_job(none.stdout) == {("0", "1")}
    assert "--gpu 0 --threads" in none.stdout  # prediction too
    assert "note: gpu=0 (no GPU on this machine): network jobs run on the CPU" in none.stderr


def test_a_model_asking_more_than_resources_allow_is_warned_about(tmp_path: Path) -> None:
    work = _tiny(tmp_path, gpu=2)
    # the command line overrides the profile's count of this machine's GPUs
    cut = snakemake(work, "-n", "-p", "--resources", "gpu=1", env=environ(work, CARVANA_GPU_DEVICES="0,1,2"))
    assert _gpus_per_train_job(cut.stdout) == {("1", "2")}
    for model in TINY_MODELS:
        assert f"warning: models.{model}.gpu asks for 2 GPUs per job but --resources gpu=1" in cut.stderr


def test_the_slurm_profile_names_only_rules_of_the_workflow() -> None:
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    rules = set(
        re.findall(
            r"^\s*rule (\w+):", "".join(p.read_text() for p in ROOT.glob("workflow/rules/*.smk")), re.M
        )
    )
    assert profile["executor"] == "slurm"
    assert set(profile["set-resources"]) <= rules
    assert set(profile["set-threads"]) <= rules
    for rule in ("train", "predict"):
        assert profile["set-resources"][rule]["runtime"] > 0 and profile["set-resources"][rule]["mem_mb"] > 0


def test_a_dry_run_with_the_slurm_profile_lists_every_job_with_its_gpu(tmp_path: Path) -> None:
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="the Slurm executor plugin is an optional install: '.[slurm]'",
    )
    work = workflow_copy(tmp_path)
    shutil.copy(ROOT / "competition.yaml", work)
    # on a login node without GPUs: the default profile must not cut the cluster's jobs to gpu=0
    result = snakemake(
        work,
        *("-n", "--profile", "profiles/slurm", "--configfile", "competition.yaml"),
        env=environ(work, CUDA_VISIBLE_DEVICES=""),
    )
    out = result.stdout
    assert "Using profiles profiles/slurm and workflow specific profile profiles/default" in result.stderr
    counts = dict(re.findall(r"^(download|train|predict|tune_threshold)\s+(\d+)$", out, re.MULTILINE))
    assert counts == {"download": "6", "train": "15", "predict": "16", "tune_threshold": "1"}
    train = re.findall(r"rule train:.*?resources: ([^\n]*)", out, re.S)
    assert len(train) == 15
    assert all("gpu=1" in line and "runtime=2880" in line and "mem_mb=64000" in line for line in train)
