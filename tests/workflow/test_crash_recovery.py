"""A run killed mid-way, as a crash or a lost node kills it (SIGKILL to Snakemake and its jobs),
then the two recovery commands of docs/running.md: finished work is kept, a training job resumes
from its last checkpoint, and only the prediction shards that were not finished run again.

The kill lands at a known point however slow the machine: the killed run holds one chosen write
(``hold_at_write``: a file whole beside its target, not yet renamed into place) until it is killed,
so the test waits for that hold, not for a moment that a fast job may already have run past."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pytest
import torch
from workflow_runs import FinishedRun, copy_run, edit_config, environ, snakemake

from barrier import wait_until

T = TypeVar("T")
EPOCHS = 4  # unet1024's epochs here: the kill lands in the third
SAVED = 2  # last.ckpt writes that land before the killed run holds the next one
HOLD_AT_WRITE = Path(__file__).with_name("hold_at_write")  # the sitecustomize.py that holds a write
RUN_S = 300  # at most, from the start of a run to its held write; seconds


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

    hold = tmp_path / "hold"
    run = _start(work, tmp_path / "killed.log", _holding_write(work, "last.ckpt", SAVED, hold))
    held = _kill_when(
        lambda: _read(hold / "held"), f"a training job to save last.ckpt {SAVED + 1} times", run
    )
    (last,) = runs.glob("fold*/checkpoints/last.ckpt")
    assert Path(held) == last.resolve()  # killed while saving that job's next checkpoint
    fold_dir = last.parents[1]
    done = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1  # epochs finished
    assert done == SAVED  # one last.ckpt an epoch; the one being saved at the kill never landed
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

    log, hold = tmp_path / "killed.log", tmp_path / "hold"
    run = _start(work, log, _holding_write(work, "shard_*-of-4.csv", 1, hold))

    def held_after_one() -> bool:  # one shard finished, as Snakemake records it; the next one held
        return (hold / "held").is_file() and bool(_finished(log.read_text(), "predict"))

    _kill_when(held_after_one, "a finished prediction shard and the next one held", run)
    done = _finished(log.read_text(), "predict")
    assert len(done) == 1
    assert Path(_read(hold / "held")).name not in {Path(name).name for name in done}
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


def _start(work: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``snakemake --cores 1`` in its own process group, so that one signal reaches every job."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "1"],
            cwd=work,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _holding_write(work: Path, name: str, after: int, hold: Path) -> dict[str, str]:
    """The environment of a run in ``work`` whose processes put the first ``after`` files named
    ``name`` (a glob) in place and hold the next one; ``hold`` gets the file ``held``, which
    names it, once a process holds it (see ``hold_at_write/sitecustomize.py``)."""
    assert (HOLD_AT_WRITE / "sitecustomize.py").is_file()  # else nothing is held, the run just ends
    hold.mkdir()
    env = environ(work)
    path = [str(HOLD_AT_WRITE), *filter(None, [env.get("PYTHONPATH")])]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(path),
        "HOLD_AT_WRITE_NAME": name,
        "HOLD_AT_WRITE_AFTER": str(after),
        "HOLD_AT_WRITE_DIR": str(hold),
    }


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _finished(log: str, rule: str) -> list[str]:
    """The outputs of the jobs of ``rule`` that Snakemake's ``log`` records as finished."""
    block = rf"rule {rule}:\n(?:\s+\w+: .*\n)*?\s+output: (.+)\n(?:\s+\w+: .*\n)*?\s+jobid: (\d+)\n"
    ended = set(re.findall(rf"^Finished jobid: (\d+) \(Rule: {rule}\)$", log, re.MULTILINE))
    return [output for output, jobid in re.findall(block, log) if jobid in ended]


def _kill_when(found: Callable[[], T], what: str, run: subprocess.Popen[bytes]) -> T:
    """The first true value of ``found()``, the moment to kill the run, which is then killed; the
    test fails (the run killed all the same) if the run ends first or ``RUN_S`` pass."""
    try:
        return wait_until(found, what, run, timeout_s=RUN_S)
    finally:
        _kill(run)


def _kill(run: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # a run that ended early left no group
        os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)


def _recover(work: Path) -> str:
    """What docs/running.md says to run after a crash (on this machine's 2 cores); returns what the
    second command printed."""
    snakemake(work, "--unlock")
    result = snakemake(work, "--cores", "2", "--rerun-incomplete")
    return result.stdout + result.stderr


def _stamps(work: Path, *patterns: str) -> dict[Path, int]:
    """The modification time of each file under ``work`` matching a glob pattern."""
    return {path: path.stat().st_mtime_ns for pattern in patterns for path in sorted(work.glob(pattern))}
