"""The ``carvana`` logger plugin: a remote job's last line on the console when Snakemake sees it end."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry

from snakemake_logger_plugin_carvana import LogHandler


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("snakemake", logging.INFO, __file__, 1, "message", None, None)
    record.__dict__.update(extra)
    return record


def _handler() -> LogHandler:
    return LogHandler(common_settings=None, settings=None)  # type: ignore[arg-type]


def _log(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("# carvana train --fold 0\n# node7, Slurm job 12 (GPUs 1), started 2026-01-01T00:00:00\n")
    with path.open("a") as out:
        out.write("".join(f"{line}\n" for line in lines))
    return path


def test_snakemake_finds_the_plugin_by_its_name() -> None:
    assert LoggerPluginRegistry().get_plugin("carvana").log_handler is LogHandler


def test_a_remote_jobs_last_line_is_printed_when_it_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = _handler()
    log = _log(
        tmp_path, "train.log", "Epoch 0: 100%", "unet fold 0: best epoch 3 of 4, held-out Dice 0.99123"
    )
    handler.emit(_record(event=LogEvent.JOB_INFO, jobid=7, log=[str(log)], local=False))
    assert capsys.readouterr().out == ""  # nothing when the job starts
    handler.emit(_record(event=LogEvent.JOB_FINISHED, job_id=7))
    assert capsys.readouterr().out == "unet fold 0: best epoch 3 of 4, held-out Dice 0.99123\n"
    handler.emit(_record(event=LogEvent.JOB_FINISHED, job_id=7))  # once only
    assert capsys.readouterr().out == ""


def test_local_jobs_jobs_without_a_log_and_other_events_print_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = _handler()
    local = _log(tmp_path, "download.log", "fetched train.zip")
    handler.emit(_record(event=LogEvent.JOB_INFO, jobid=1, log=[str(local)], local=True))  # printed its own
    handler.emit(_record(event=LogEvent.JOB_INFO, jobid=2, log=[], local=False))
    empty = _log(tmp_path, "empty.log")
    handler.emit(_record(event=LogEvent.JOB_INFO, jobid=3, log=[str(empty)], local=False))
    gone = tmp_path / "gone.log"
    handler.emit(_record(event=LogEvent.JOB_INFO, jobid=4, log=[str(gone)], local=False))
    for job in (1, 2, 3, 4, 5):
        handler.emit(_record(event=LogEvent.JOB_FINISHED, job_id=job))
    handler.emit(_record(event=LogEvent.PROGRESS, done=1, total=2))
    handler.emit(_record())  # a plain message
    assert capsys.readouterr().out == ""
