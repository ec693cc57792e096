"""``carvana logged``: a job's output in its log, its last line on the console, its status kept."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
from pathlib import Path

from barrier import wait_until
from carvana.cli import main
from carvana.job_log import header, last_line, run_logged

PY = sys.executable


def _run(tmp_path: Path, code: str) -> tuple[int, Path, str, str]:
    log = tmp_path / "logs/job.log"  # its folder does not exist yet
    console, errors = io.StringIO(), io.StringIO()
    status = run_logged([PY, "-c", code], log, console, errors)
    return status, log, console.getvalue(), errors.getvalue()


def test_the_header_names_the_command_and_the_slurm_job_with_its_gpus() -> None:
    local = header(["carvana", "train", "--fold", "0"], {})
    assert re.fullmatch(r"# carvana train --fold 0\n# [^,]+, started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\n", local)
    slurm = header(["carvana", "oof"], {"SLURM_JOB_ID": "17", "SLURM_JOB_GPUS": "1"})
    assert ", Slurm job 17 (GPUs 1), started " in slurm.splitlines()[1]
    cpu_only = header(["carvana", "oof"], {"SLURM_JOB_ID": "18"})
    assert ", Slurm job 18, started " in cpu_only.splitlines()[1]


def test_the_last_line_is_the_last_redraw_or_line_with_text() -> None:
    assert (
        last_line("Epoch 0: 50%\rEpoch 0: 100%\nunet fold 0: best epoch 1 of 1\n\n")
        == "unet fold 0: best epoch 1 of 1"
    )
    assert last_line("Epoch 0: 50%\rEpoch 0: 100%") == "Epoch 0: 100%"
    assert last_line("") == ""


def test_a_job_that_succeeds_leaves_its_output_in_the_log_and_one_line_on_the_console(tmp_path: Path) -> None:
    code = "import sys; print('loading'); print('a warning', file=sys.stderr); print('3 images in 0.5 s')"
    status, log, console, errors = _run(tmp_path, code)
    assert status == 0 and errors == ""
    lines = log.read_text().splitlines()
    assert lines[0].startswith("# ") and lines[1].startswith("# ")
    assert lines[2:] == ["loading", "a warning", "3 images in 0.5 s"]  # in order: unbuffered, one file
    assert re.fullmatch(r"3 images in 0\.5 s \(\d+\.\d s\)\n", console)


def test_a_job_that_fails_shows_the_end_of_its_log_and_keeps_its_status(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for i in range(30): print(f'line {i}')\n"
        "print('bad input: fix it', file=sys.stderr)\n"
        "sys.exit(3)"
    )
    status, log, console, errors = _run(tmp_path, code)
    assert status == 3 and console == ""
    assert "failed with exit status 3 after " in errors and str(log) in errors
    shown = [line.strip() for line in errors.splitlines()[1:]]
    assert shown == [*(f"line {i}" for i in range(11, 30)), "bad input: fix it"]  # the last 20 lines
    assert "bad input: fix it" in log.read_text()


def test_a_job_ended_by_a_signal_reports_128_plus_its_number(tmp_path: Path) -> None:
    status, _, _, errors = _run(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert status == 128 + signal.SIGKILL
    assert f"exit status {128 + signal.SIGKILL}" in errors


def test_a_missing_command_is_status_127_with_its_name(tmp_path: Path) -> None:
    console, errors = io.StringIO(), io.StringIO()
    assert run_logged(["no-such-command-here"], tmp_path / "job.log", console, errors) == 127
    assert errors.getvalue().startswith("no-such-command-here: No such file or directory")


def test_a_signal_to_the_wrapper_reaches_the_job(tmp_path: Path) -> None:
    """Snakemake or Slurm cancelling a job signals the wrapper: the job itself must hear it."""
    log = tmp_path / "job.log"
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('stopping cleanly'), sys.exit(5)))\n"
        "print('ready')\n"
        "time.sleep(60)"
    )

    def started() -> bool:  # a line of its own: the header names 'ready' too, in the command
        return log.is_file() and "ready" in log.read_text().splitlines()

    wrapper = subprocess.Popen([PY, "-m", "carvana.cli", "logged", "--log", str(log), "--", PY, "-c", code])
    try:
        wait_until(started, "the job to start", wrapper)
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 5
    finally:
        wrapper.kill()
    assert "stopping cleanly" in log.read_text()


def test_the_command_needs_something_to_run(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["logged", "--log", str(tmp_path / "job.log"), "--"]) == 2
    assert "logged needs a command after --" in capsys.readouterr().err
