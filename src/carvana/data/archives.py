"""Safe extraction of the competition's zip archives.

Each competition zip unpacks to a folder (or a file) of its own name: ``train.zip`` -> ``train/``,
``train_masks.csv.zip`` -> ``train_masks.csv``. An entry whose path is absolute or climbs out of
the target folder is refused before anything is written.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from carvana.atomic import atomic_path


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the folder it is extracted into."""


def check_members(archive: zipfile.ZipFile, archive_path: Path) -> None:
    """Raise UnsafeArchiveError naming the first entry that is absolute or leaves the target."""
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if path.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise UnsafeArchiveError(f"{archive_path}: entry {info.filename!r} has an absolute path; refused")
        if ".." in path.parts:
            raise UnsafeArchiveError(
                f"{archive_path}: entry {info.filename!r} leaves the extraction folder; refused"
            )


def extract_to(archive_path: Path, target: Path) -> None:
    """Extract a competition zip so that its single top-level folder or file becomes ``target``.

    ``train_hq.zip`` (top folder ``train_hq/``) can so become ``train/``. ``target`` appears whole
    or not at all.
    """
    with zipfile.ZipFile(archive_path) as archive:
        check_members(archive, archive_path)
        tops = {PurePosixPath(info.filename.replace("\\", "/")).parts[0] for info in archive.infolist()}
        if len(tops) != 1:
            raise ValueError(
                f"{archive_path}: expected one top-level folder or file, found {len(tops)}: "
                f"{sorted(tops)[:5]}"
            )
        (top,) = tops
        staging = target.with_name(f".{target.name}.extract-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            archive.extractall(staging)
            with atomic_path(target) as temporary:
                (staging / top).replace(temporary)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
