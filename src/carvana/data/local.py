"""The ``local`` data source: competition files that a user downloaded by hand.

The source folder holds, for each part of the dataset, either the unpacked folder or file
(``train/``, ``train_masks.csv``, ...) or the competition's zip of it (``train.zip``,
``train_masks.csv.zip``, ...). Unpacked parts are linked into the dataset folder (no copy of
tens of GB); zips are extracted there. With ``hq``, the images come from ``train_hq``/``test_hq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carvana import schema
from carvana.atomic import atomic_path
from carvana.data.archives import extract_to
from carvana.layout import DatasetPaths


@dataclass(frozen=True)
class LocalSpec:
    """Where the hand-downloaded files are, and whether to take the HQ images."""

    source_dir: Path
    hq: bool = schema.default("local.hq")


def parts(spec: LocalSpec, paths: DatasetPaths) -> list[tuple[str, Path]]:
    """(name in the source, target in the dataset folder) for every part of the dataset."""
    suffix = "_hq" if spec.hq else ""
    return [
        (f"train{suffix}", paths.train_dir),
        ("train_masks", paths.train_masks_dir),
        (f"test{suffix}", paths.test_dir),
        ("train_masks.csv", paths.train_masks_csv_path),
        ("metadata.csv", paths.metadata_path),
        ("sample_submission.csv", paths.sample_submission_path),
    ]


def import_local(spec: LocalSpec, data_dir: Path) -> None:
    """Link or extract every part of the source into ``data_dir``; say which parts are missing."""
    source = Path(spec.source_dir).expanduser().resolve()
    if not source.is_dir():
        raise FileNotFoundError(
            f"local.source_dir {spec.source_dir} is not a folder: set it in the config to the folder "
            "that holds the competition's files (train/ or train.zip, train_masks/ or "
            "train_masks.zip, test/ or test.zip, train_masks.csv, metadata.csv, sample_submission.csv)"
        )
    paths = DatasetPaths(Path(data_dir))
    if paths.data_dir.resolve() == source:
        raise ValueError(
            f"data_dir and local.source_dir are the same folder ({source}): importing would replace "
            "the files it reads. Keep data_dir apart (the default is results/data); the import links "
            "unpacked folders there, so nothing large is copied"
        )
    plan = []
    missing = []
    for name, target in parts(spec, paths):
        unpacked, archive = source / name, source / f"{name}.zip"
        if unpacked.exists():
            plan.append((unpacked, target, False))
        elif archive.is_file():
            plan.append((archive, target, True))
        else:
            missing.append(f"{name} (or {name}.zip)")
    if missing:
        raise FileNotFoundError(f"{source} lacks: {', '.join(missing)}")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    for origin, target, is_archive in plan:
        if is_archive:
            extract_to(origin, target)
        else:
            with atomic_path(target) as temporary:
                temporary.symlink_to(origin, target_is_directory=origin.is_dir())
