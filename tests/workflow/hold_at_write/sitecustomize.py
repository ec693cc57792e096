"""Holds one write of a test's Snakemake run, so that the test kills the run at a known point.

Put on ``PYTHONPATH``, this module is imported by every Python process of the run (Snakemake and
each job). With ``HOLD_AT_WRITE_NAME`` set (a glob on a file's name), it wraps ``os.replace``,
through which ``carvana.atomic`` puts every output in place: the first ``HOLD_AT_WRITE_AFTER``
writes of a file of that name, counted across the run's processes, go through; the next does not.
Its process writes the path it was about to put in place to ``held`` in ``HOLD_AT_WRITE_DIR`` and
waits, its file whole beside the target but not renamed, until the test kills the run. If the test
never does (it died), the process exits with an error after ``HOLD_S``, so nothing runs on.
With ``HOLD_AT_WRITE_ONCE=1``, writes after the held one go through: a job that is retried after
the test cancelled the held one runs to its end.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from pathlib import Path
from typing import Any

HOLD_S = 600.0


def _install(pattern: str, after: int, folder: Path, once: bool) -> None:
    replace = os.replace

    def held(dst: Any) -> bool:
        if not fnmatch.fnmatch(Path(os.fsdecode(dst)).name, pattern):
            return False
        if once and (folder / "held").exists():
            return False
        return not _passes(folder, after)

    def replace_unless_held(src: Any, dst: Any, **fds: Any) -> None:
        if held(dst):
            target = Path(os.fsdecode(dst)).resolve()
            temporary = folder / f".held.{os.getpid()}"
            temporary.write_text(str(target))
            replace(temporary, folder / "held")  # whole when the test reads it
            time.sleep(HOLD_S)
            print(f"held at {target} for {HOLD_S:.0f} s and never killed", file=sys.stderr, flush=True)
            os._exit(1)
        replace(src, dst, **fds)

    os.replace = replace_unless_held


def _passes(folder: Path, after: int) -> bool:
    """Whether this write is one of the first ``after``: it takes the next free ticket, if any left.
    A ticket is a file made by exclusive creation, so two processes never take the same one."""
    for ticket in range(1, after + 1):
        try:
            (folder / f"passed-{ticket}").open("x").close()
        except FileExistsError:
            continue
        return True
    return False


if os.environ.get("HOLD_AT_WRITE_NAME"):
    _install(
        os.environ["HOLD_AT_WRITE_NAME"],
        int(os.environ["HOLD_AT_WRITE_AFTER"]),
        Path(os.environ["HOLD_AT_WRITE_DIR"]),
        os.environ.get("HOLD_AT_WRITE_ONCE") == "1",
    )
