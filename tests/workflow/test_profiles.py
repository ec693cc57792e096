"""The workflow profiles: the default one's GPU budget, and the Slurm one, by dry runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
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


# The workflow's rules for the config files given, each with whether it is local (runs where
# Snakemake runs, never as a cluster job), from Snakemake's own parse of the workflow.
RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    settings = ConfigSettings(configfiles=[Path(path) for path in sys.argv[1:]])
    flow = api.workflow(ResourceSettings(), settings, snakefile=Path("Snakefile"))._workflow
    print(json.dumps({rule.name: rule.name in flow._localrules or rule.norun for rule in flow.rules}))
"""


def _rules(work: Path, *config_files: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", RULES, *config_files],
        cwd=work,
        env=environ(work),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rules: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return rules


def test_every_rule_that_runs_as_a_slurm_job_has_its_runtime_memory_and_cpus(tmp_path: Path) -> None:
    """The rules of every dataset (synthetic, kaggle, local): a rule missing from set-resources
    would get the default hour and 8 GB, which the competition's counts can exceed (make scale)."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    work = workflow_copy(tmp_path)
    shutil.copy(ROOT / "competition.yaml", work)
    (work / "local.yaml").write_text(yaml.safe_dump({"dataset": "local", "local": {"source_dir": "/data"}}))
    rules = _rules(work) | _rules(work, "competition.yaml") | _rules(work, "local.yaml")
    local = {rule for rule, is_local in rules.items() if is_local}
    remote = sorted(rule for rule, is_local in rules.items() if not is_local)
    assert local == {"all", "download", "pretrained_vgg11", "submit"}
    assert {"synthesize", "import_kaggle", "import_local", "score", "pseudo_labels_table"} <= set(remote)
    assert sorted(profile["set-resources"]) == remote  # every one, and no rule that is not one
    for rule in remote:
        given = {**profile["default-resources"], **profile["set-resources"][rule]}
        assert given["runtime"] >= 15 and given["mem_mb"] >= 2000 and given["cpus_per_task"] >= 2, rule
    for rule, threads in profile["set-threads"].items():  # a job's threads are the CPUs it gets
        assert profile["set-resources"][rule]["cpus_per_task"] == threads, rule


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
