"""A job's output in its log file, and one line on the console: ``carvana logged --log L -- CMD``.

Snakemake's convention: what a job prints goes to its log, and the console shows Snakemake's own
progress. Two training jobs that wrote to the console at once would interleave their progress bars
line by line; a cluster run would do the same with many more jobs. So every rule runs its command
through :func:`run_logged`, which

- writes a header to the log: the command, the machine, the Slurm job and its GPUs if any, and the
  start time (a job's log says where it ran, and ``tail -f`` shows it while it runs);
- runs the command with its output, both streams, unbuffered, into the log;
- prints the last line of that output on the console when the command succeeds: each stage ends
  with the line a user wants from it (a training job's best epoch and held-out Dice, a shard's
  images per second), followed by the job's time;
- prints the end of the log on standard error when it fails, and exits with the command's status.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

FAILURE_LINES = 20  # lines of a failed job's log shown on the console
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # passed on to the job's command


def header(command: Sequence[str], environ: Mapping[str, str]) -> str:
    """The log's first lines: the command, then where and when it runs."""
    where = [socket.gethostname()]
    if "SLURM_JOB_ID" in environ:
        gpus = environ.get("SLURM_JOB_GPUS") or environ.get("SLURM_STEP_GPUS")
        where.append(f"Slurm job {environ['SLURM_JOB_ID']}" + (f" (GPUs {gpus})" if gpus else ""))
    where.append(f"started {datetime.now().isoformat(timespec='seconds')}")
    return f"# {shlex.join(command)}\n# {', '.join(where)}\n"


HEADER_LINES = 2  # what :func:`header` writes


def last_line(text: str) -> str:
    """The last non-empty line a command printed (a progress bar's last redraw counts as a line)."""
    return next(iter(tail(text, 1)), "").strip()


def tail(text: str, lines: int) -> list[str]:
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


def summary(log: Path) -> str:
    """The last line a job printed, read from its log past the header; empty if there is none."""
    try:
        return last_line(log.read_text(errors="replace").split("\n", HEADER_LINES)[-1])
    except OSError:
        return ""


@contextlib.contextmanager
def _forwarding(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """While the command runs, a signal to this process (Snakemake cancelling the job) goes to it."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_logged(
    command: Sequence[str], log: Path, console: TextIO = sys.stdout, errors: TextIO = sys.stderr
) -> int:
    """Run ``command`` with its output in ``log`` (replaced); returns its exit status, 128 + N
    when a signal N ended it, as a shell reports it."""
    if not command:
        raise ValueError("no command to run: carvana logged --log LOG -- COMMAND ...")
    log.parent.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    head = header(command, environ)
    with log.open("w") as out:
        out.write(head)
        out.flush()
        try:
            process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=environ)
        except OSError as error:
            out.write(f"{error}\n")
            print(f"{command[0]}: {error.strerror} (log: {log})", file=errors, flush=True)
            return 127
        with _forwarding(process):
            status = process.wait()
    seconds = time.monotonic() - started
    status = 128 - status if status < 0 else status
    text = log.read_text(errors="replace").removeprefix(head)
    if status == 0:
        print(f"{last_line(text)} ({seconds:.1f} s)", file=console, flush=True)
    else:
        shown = "\n".join(f"    {line}" for line in tail(text, FAILURE_LINES))
        print(
            f"failed with exit status {status} after {seconds:.1f} s; the end of {log}:\n{shown}",
            file=errors,
            flush=True,
        )
    return status
