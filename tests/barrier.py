"""Barriers for tests whose processes must overlap in time.

A sleep or a timing window makes two processes overlap only when the machine keeps up; on two busy
cores it sometimes does not, and the test fails for no bug. A barrier makes the overlap certain:
one side creates a file, the other waits until it exists. Every wait is bounded by a generous
``WAIT_S``, after which the test fails and says what it waited for, so that broken behaviour
fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
WAIT_S = 60.0  # far longer than any wait here takes on a loaded machine; seconds


def wait_until(
    found: Callable[[], T],
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    timeout_s: float = WAIT_S,
) -> T:
    """The first true value of ``found()``, asked every 10 ms. Fails the test if ``timeout_s``
    pass first, or if ``process`` (the one expected to bring it about) ends first."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = None if process is None else process.poll()  # asked first, so that found()
        value = found()  # sees all that an ended process did
        if value:
            return value
        if status is not None:
            pytest.fail(f"the process ended (status {status}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.01)


def signal_file(path: Path, text: str = "") -> None:
    """Create ``path`` with ``text`` in one step: whoever sees it sees all of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)
