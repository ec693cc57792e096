"""The tiny workflow through ``profiles/slurm`` on a real one-node Slurm cluster with two fake GPUs.

The cluster (``tests/slurm_cluster.py``) runs for this module only. Every job is an ``sbatch``
submission of snakemake-executor-plugin-slurm, as on a user's cluster; the profile is used as the
README says, with an account and a partition set in it. The cluster keeps no accounting database,
so the run asks ``squeue`` for job states (``--slurm-status-command squeue``); Snakemake runs
through ``slurm_poll.py``, which has the plugin check them every 2 s, as the tests' jobs take
seconds rather than hours.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_runs import TINY, TINY_MODELS, copy_run, edit_config, environ, snakemake, workflow_copy

from barrier import wait_until
from slurm_cluster import Cluster, cluster, require_slurm

pytestmark = pytest.mark.slow  # a Slurm cluster runs the tiny workflow

SLURM_ARGS = ("--profile", "profiles/slurm", "--slurm-status-command", "squeue")
SNAKEMAKE = (str(Path(__file__).with_name("slurm_poll.py")),)  # instead of -m snakemake
HOLD_AT_WRITE = Path(__file__).with_name("hold_at_write")
NETWORK_RULES = ("train", "oof", "predict")
RUN_S = 900


@dataclass(frozen=True)
class SlurmRun:
    cluster: Cluster
    work: Path
    output: str


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmRun]:
    require_slurm()
    root = tmp_path_factory.mktemp("slurm")
    # the smallest DAG that shows what a cluster adds: one model's two folds, which train at once
    # on the two GPUs, and every stage after them, one prediction shard
    models = {"unet1024": {**TINY_MODELS["unet1024"], "gpu": 1}}
    work = workflow_copy(root, {**TINY, "models": models, "predict": {"gpu": 1, "shards": 1}})
    _set_account_and_partition(work / "profiles/slurm/config.yaml")
    with cluster(root / "cluster") as slurm:
        env = slurm.environ(environ(work))
        result = snakemake(work, *SLURM_ARGS, env=env, timeout_s=RUN_S, program=SNAKEMAKE)
        yield SlurmRun(slurm, work, result.stdout + result.stderr)


def _set_account_and_partition(profile: Path) -> None:
    """What the README asks of a user: the profile's account and partition, uncommented."""
    text = profile.read_text()
    for key, value in (("slurm_account", "carvana"), ("slurm_partition", "gpu")):
        text, done = re.subn(rf"# {key}: \S+", f"{key}: {value}", text)
        assert done == 1, f"profiles/slurm/config.yaml has no commented {key} line to set"
    profile.write_text(text)


def _job_logs(work: Path) -> dict[str, Path]:
    logs = sorted((work / "results/logs").rglob("*.log"))
    return {str(path.relative_to(work / "results/logs")): path for path in logs}


def _header(log: Path) -> dict[str, str]:
    """What ``carvana logged`` wrote at the top of a job's log: Slurm job id, GPUs, start."""
    second = log.read_text().splitlines()[1]
    found = re.fullmatch(r"# (\S+), Slurm job (\d+)(?: \(GPUs ([\d,]+)\))?, started (\S+)", second)
    assert found, f"{log}: no Slurm job in its header: {second!r}"
    host, job, gpus, started = found.groups()
    return {"host": host, "job": job, "gpus": gpus or "", "started": started}


def _slurm_times(slurm: Cluster) -> dict[str, tuple[datetime, datetime]]:
    """Each job's start and end as slurmctld recorded them."""
    out = slurm.command("squeue", "--noheader", "--states=all", "--format=%i|%S|%e")
    times = {}
    for line in out.splitlines():
        job, start, end = line.strip().split("|")
        times[job] = (datetime.fromisoformat(start), datetime.fromisoformat(end))
    return times


def test_every_job_runs_as_a_slurm_job_to_a_valid_submission(slurm_run: SlurmRun) -> None:
    logs = _job_logs(slurm_run.work)
    jobs = {job["id"]: job for job in slurm_run.cluster.jobs()}
    assert len(logs) == 13  # every job of the DAG but `all`
    for name, log in logs.items():
        job = jobs[_header(log)["job"]]
        assert job["state"] == "COMPLETED", name
        rule = name.split("/")[0].removesuffix(".log")  # train/unet_fold0.log, make_folds.log
        assert job["comment"].startswith(f"rule_{rule}"), (name, job["comment"])  # what squeue %k shows
    train_job = jobs[_header(logs["train/unet1024_fold1.log"])["job"]]
    assert train_job["comment"] == "rule_train_wildcards_results_unet1024_1"  # results=results: round 0
    assert len({_header(log)["job"] for log in logs.values()}) == len(logs)  # one Slurm job each
    check = json.loads((slurm_run.work / "results/submission_check.json").read_text())
    assert check["rows"] == 32
    submission = pd.read_csv(slurm_run.work / "results/submission.csv.gz")
    assert len(submission) == 32 and submission["rle_mask"].notna().all()
    assert "14 of 14 steps (100%) done" in slurm_run.output


def test_each_network_job_leases_the_one_gpu_slurm_gave_it(slurm_run: SlurmRun) -> None:
    logs = {
        name: log for name, log in _job_logs(slurm_run.work).items() if name.split("/")[0] in NETWORK_RULES
    }
    assert len(logs) == 2 + 2 + 1  # train, oof, predict
    for name, log in logs.items():
        gpus = _header(log)["gpus"]
        assert gpus in {"0", "1"}, f"{name}: Slurm gave it GPUs {gpus!r}, not one"
        # Slurm's CUDA_VISIBLE_DEVICES is the job's whole pool: the job leased it
        assert f"GPU: leased device(s) {gpus} of {gpus}" in log.read_text(), name


def test_two_training_jobs_run_at_once_on_the_two_gpus(slurm_run: SlurmRun) -> None:
    times = _slurm_times(slurm_run.cluster)
    train = [_header(log) for name, log in _job_logs(slurm_run.work).items() if name.startswith("train/")]
    pairs = [
        (a["job"], b["job"])
        for a in train
        for b in train
        if a["job"] < b["job"]
        and times[a["job"]][0] < times[b["job"]][1]
        and times[b["job"]][0] < times[a["job"]][1]  # their runs overlap
    ]
    assert pairs, f"no two training jobs ran at once: {[(job['job'], times[job['job']]) for job in train]}"
    on = {job["job"]: job["gpus"] for job in train}
    assert all(on[a] != on[b] for a, b in pairs)  # never two at once on one device
    assert {on[job] for pair in pairs for job in pair} == {"0", "1"}


def test_the_console_has_each_jobs_last_line_and_no_job_output(slurm_run: SlurmRun) -> None:
    """The jobs' output went to Slurm's files and their logs; the profile's logger plugin put each
    job's last line on the console, as a local run shows it."""
    for name, log in _job_logs(slurm_run.work).items():
        line = log.read_text().replace("\r", "\n").strip().splitlines()[-1]  # every job prints one
        assert len(re.findall(rf"^{re.escape(line)}$", slurm_run.output, re.M)) == 1, name
    assert "best epoch" in slurm_run.output and "Epoch 0:" not in slurm_run.output


def test_a_second_run_does_nothing(slurm_run: SlurmRun) -> None:
    env = slurm_run.cluster.environ(environ(slurm_run.work))
    again = snakemake(slurm_run.work, *SLURM_ARGS, env=env, program=SNAKEMAKE)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert not re.search(r"submitted with SLURM jobid", again.stdout + again.stderr)


def test_a_cancelled_training_job_is_reported_and_its_retry_resumes(
    slurm_run: SlurmRun, tmp_path: Path
) -> None:
    """``scancel`` of a running training job, as a lost node or a preemption ends it: Snakemake
    reports the job as failed and, as the profile's ``retries: 1`` asks, submits it again; the
    new Slurm job resumes from the checkpoint of the epoch the cancelled one had finished."""
    work = copy_run(slurm_run.work, tmp_path / "work")
    edit_config(work, {"models.unet1024.epochs": 4})
    fold = work / "results/models/unet1024/fold0"
    (fold / "checkpoints/last.ckpt").unlink()  # the finished run's: only this run's count below
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {
        **slurm_run.cluster.environ(environ(work)),
        "PYTHONPATH": str(HOLD_AT_WRITE),
        **{"HOLD_AT_WRITE_NAME": "last.ckpt", "HOLD_AT_WRITE_AFTER": "1", "HOLD_AT_WRITE_ONCE": "1"},
        "HOLD_AT_WRITE_DIR": str(hold),
    }
    target = "results/models/unet1024/fold0/weights.pt"
    console = tmp_path / "console.log"
    with console.open("wb") as out:
        run = subprocess.Popen(
            [sys.executable, *SNAKEMAKE, *SLURM_ARGS, target],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        held = wait_until(
            lambda: (hold / "held").is_file(), "the training job to save its 2nd checkpoint", run, 300
        )
        assert held
        cancelled = _header(work / "results/logs/train/unet1024_fold0.log")["job"]
        epochs_done = (
            int(torch.load(fold / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["epoch"])
            + 1
        )
        assert epochs_done == 1
        slurm_run.cluster.command("scancel", cancelled)
        assert run.wait(timeout=RUN_S) == 0, console.read_text()[-3000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    output = console.read_text()
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output
    assert "Error in rule train" in output and "results/logs/train/unet1024_fold0.log" in output
    assert "Trying to restart job" in output
    log = (work / "results/logs/train/unet1024_fold0.log").read_text()
    retry = _header(work / "results/logs/train/unet1024_fold0.log")["job"]
    assert retry != cancelled
    assert "resumed after epoch 1: training epochs 2..4" in log
    assert pd.read_csv(fold / "metrics.csv")["epoch"].tolist() == [1, 2, 3, 4]
