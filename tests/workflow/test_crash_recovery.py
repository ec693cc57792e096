"""A run killed mid-way, as a crash or a lost node kills it (SIGKILL to Snakemake and its jobs),
then the README's two recovery commands: finished work is kept, a training job resumes from its
last checkpoint, and only the prediction shards that were not finished run again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pytest
import torch
from workflow_runs import FinishedRun, copy_run, edit_config, environ, snakemake

T = TypeVar("T")
EPOCHS = 12  # unet1024's epochs here: enough that the kill lands while it trains


@pytest.mark.slow
def test_a_killed_training_job_resumes_from_its_last_checkpoint(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    edit_config(work, {"models.unet1024.epochs": EPOCHS})
    runs = work / "results/models/unet1024"
    for checkpoint in runs.glob("fold*/checkpoints/last.ckpt"):
        checkpoint.unlink()  # the finished run's: only checkpoints of this run count below
    others = _stamps(work, "results/models/unet/*/weights.pt", "results/models/unet11/*/weights.pt")

    run = _start(work, tmp_path / "killed.log")
    checkpoints = _wait_for(lambda: list(runs.glob("fold*/checkpoints/last.ckpt")), run)
    _kill(run)
    (last,) = checkpoints
    fold_dir = last.parents[1]
    done = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1  # epochs finished
    assert done < EPOCHS, "the job finished before it was killed"
    assert not (fold_dir / "weights.pt").exists()

    _recover(work)
    log = (work / f"results/logs/train/unet1024_{fold_dir.name}.log").read_text()
    assert f"resumed after epoch {done}: training epochs {done + 1}..{EPOCHS}" in log  # nothing older lost
    assert pd.read_csv(fold_dir / "metrics.csv")["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert torch.load(fold_dir / "weights.pt", weights_only=False)["epoch"] in range(1, EPOCHS + 1)
    assert _stamps(work, "results/models/unet/*/weights.pt", "results/models/unet11/*/weights.pt") == others
    assert (work / "results/submission.csv.gz").is_file()


@pytest.mark.slow
def test_a_killed_prediction_run_keeps_its_finished_shards(finished_run: FinishedRun, tmp_path: Path) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    edit_config(work, {"predict.shards": 4})
    weights = _stamps(work, "results/models/*/*/weights.pt")

    log = tmp_path / "killed.log"
    run = _start(work, log)
    _wait_for(lambda: _finished(log.read_text(), "predict"), run)  # as Snakemake records it
    _kill(run)
    done = _finished(log.read_text(), "predict")
    assert 1 <= len(done) < 4
    finished = {path: path.stat().st_mtime_ns for path in (work / name for name in done)}

    output = _recover(work)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", output, re.MULTILINE))
    assert jobs["predict"] == str(4 - len(done))  # the missing shards only
    assert "train" not in jobs and "tune_threshold" not in jobs
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # not rewritten
    assert len(list((work / "results/predict").glob("shard_*-of-4.csv"))) == 4
    assert _stamps(work, "results/models/*/*/weights.pt") == weights
    submission = pd.read_csv(work / "results/submission.csv.gz")
    assert len(submission) == 32 and submission["rle_mask"].notna().all()


# --- helpers --------------------------------------------------------------------------------------


def _start(work: Path, log: Path) -> subprocess.Popen[bytes]:
    """``snakemake --cores 1`` in its own process group, so that one signal reaches every job."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "1"],
            cwd=work,
            env=environ(work),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finished(log: str, rule: str) -> list[str]:
    """The outputs of the jobs of ``rule`` that Snakemake's ``log`` records as finished."""
    block = rf"rule {rule}:\n(?:\s+\w+: .*\n)*?\s+output: (.+)\n(?:\s+\w+: .*\n)*?\s+jobid: (\d+)\n"
    ended = set(re.findall(rf"^Finished jobid: (\d+) \(Rule: {rule}\)$", log, re.MULTILINE))
    return [output for output, jobid in re.findall(block, log) if jobid in ended]


def _wait_for(found: Callable[[], list[T]], run: subprocess.Popen[bytes], seconds: float = 300) -> list[T]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        paths = found()
        if paths:
            return paths
        if run.poll() is not None:
            pytest.fail(f"the run ended (status {run.returncode}) before the moment to kill it")
        time.sleep(0.05)
    _kill(run)
    pytest.fail(f"nothing to kill at after {seconds} s")


def _kill(run: subprocess.Popen[bytes]) -> None:
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)


def _recover(work: Path) -> str:
    """What the README says to run after a crash; returns what the second command printed."""
    snakemake(work, "--unlock")
    result = snakemake(work, "--cores", "1", "--rerun-incomplete")
    return result.stdout + result.stderr


def _stamps(work: Path, *patterns: str) -> dict[Path, int]:
    """The modification time of each file under ``work`` matching a glob pattern."""
    return {path: path.stat().st_mtime_ns for pattern in patterns for path in sorted(work.glob(pattern))}
