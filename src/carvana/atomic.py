"""Atomic file and folder writes: a killed job never leaves an output that looks complete.

Everything is written under a temporary name in the target's own folder (so the final rename stays
on one file system) and renamed into place only once it is whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Works for a file or a folder. On error the temporary is removed and ``path`` is untouched.
    An existing folder at ``path`` is replaced whole; an existing link is replaced, its target kept.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove(temporary)
    try:
        yield temporary
        if target.is_symlink():
            target.unlink()  # a link from an earlier import: drop the link, never what it points to
        elif target.is_dir():
            shutil.rmtree(target)
        temporary.replace(target)
    finally:
        _remove(temporary)


def write_text(path: Path | str, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
