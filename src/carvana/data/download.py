"""The ``kaggle`` data source: the competition's archives, one at a time, through the kaggle CLI.

A download takes one archive into a hidden folder beside its final place, checks its size against
the competition's file list and that it is a zip, and only then renames it into place, so an
interrupted download never leaves an archive that looks whole. An archive already there with the
listed size is kept. The CLI does not unzip; ``carvana.data.local`` extracts.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from carvana.kaggle.client import KaggleCLI, KaggleError


def archive_names(hq: bool) -> list[str]:
    """The competition archives a run needs: standard or high-quality images."""
    images = ["train_hq.zip", "test_hq.zip"] if hq else ["train.zip", "test.zip"]
    return [
        *images,
        "train_masks.zip",
        "train_masks.csv.zip",
        "metadata.csv.zip",
        "sample_submission.csv.zip",
    ]


def download(cli: KaggleCLI, name: str, archive_dir: Path) -> Path:
    """Fetch archive ``name`` into ``archive_dir`` unless a whole copy is there; return its path."""
    sizes = cli.file_sizes()
    if name not in sizes:
        raise KaggleError(
            f"{name} is not among the files of {cli.competition!r}: {', '.join(sorted(sizes)) or 'none'}"
        )
    size = sizes[name]
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / name
    if target.is_file() and target.stat().st_size == size and zipfile.is_zipfile(target):
        print(f"{target}: already here, {size:,} bytes as listed; kept", flush=True)
        return target
    partial = archive_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # a killed download's leftovers, before counting space
    needed = 2 * size  # the archive, and the files it unpacks to (JPEGs and GIFs do not shrink)
    free = shutil.disk_usage(archive_dir).free
    if free < needed:
        raise KaggleError(
            f"not enough disk for {name}: it needs {needed / 1e9:.1f} GB in {archive_dir} (the "
            f"{size / 1e9:.1f} GB archive and its extraction) and {free / 1e9:.1f} GB are free; free "
            "some space or set kaggle.archive_dir (and data_dir) to a larger disk"
        )
    partial.mkdir()
    print(f"downloading {name} ({size:,} bytes) from {cli.competition}", flush=True)
    cli.run(
        "competitions", "download", "-c", cli.competition, "-f", name, "-p", str(partial), "--force", "-q"
    )
    fetched = partial / name
    if not fetched.is_file():
        found = sorted(p.name for p in partial.iterdir())
        raise KaggleError(f"the kaggle CLI finished but {name} is not in {partial} (found {found})")
    if fetched.stat().st_size != size or not zipfile.is_zipfile(fetched):
        raise KaggleError(
            f"{name} arrived with {fetched.stat().st_size:,} bytes where Kaggle lists {size:,}, or is "
            "not a zip; rerun to download it again"
        )
    fetched.replace(target)
    shutil.rmtree(partial, ignore_errors=True)
    print(f"{target}: {size:,} bytes", flush=True)
    return target
