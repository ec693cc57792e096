"""The kaggle data source, driven through the unmodified kaggle CLI against a stub of Kaggle's API
on 127.0.0.1 (tests/kaggle_stub.py): each archive fetched once, whole or not at all."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from carvana.data.archives import UnsafeArchiveError
from carvana.data.download import download
from carvana.data.local import LocalSpec, import_local
from carvana.kaggle.client import KaggleCLI, KaggleError
from kaggle_stub import KEY, KaggleStub, cli_environ, competition_archives


def test_download_fetches_each_archive_once_and_the_import_makes_the_layout(
    tiny_dataset, tmp_path: Path, home: Path
) -> None:
    files = competition_archives(tiny_dataset.data_dir)
    archive_dir = tmp_path / "kaggle"
    with KaggleStub(files) as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        for name in files:
            assert download(cli, name, archive_dir).read_bytes() == files[name]
        fetched = [body["fileName"] for _, path, body in stub.requests if path.endswith("DownloadDataFile")]
        assert sorted(fetched) == sorted(files)
        download(cli, "train.zip", archive_dir)  # whole and listed: kept, not fetched again
        assert sum(path.endswith("DownloadDataFile") for _, path, _ in stub.requests) == len(files)
    assert sorted(p.name for p in archive_dir.iterdir()) == sorted(files)  # no partial folders left
    import_local(LocalSpec(archive_dir), tmp_path / "data")
    for part in ("train", "train_masks", "test"):
        expected = sorted(p.name for p in (tiny_dataset.data_dir / part).iterdir())
        assert sorted(p.name for p in (tmp_path / "data" / part).iterdir()) == expected


def test_a_truncated_archive_is_not_kept(tiny_dataset, tmp_path: Path, home: Path) -> None:
    files = {"metadata.csv.zip": competition_archives(tiny_dataset.data_dir)["metadata.csv.zip"]}
    with KaggleStub(files) as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        stub.files["metadata.csv.zip"] = files["metadata.csv.zip"][:-10]  # listed whole, served short
        stub.listed = {"metadata.csv.zip": len(files["metadata.csv.zip"])}
        with pytest.raises(KaggleError):
            download(cli, "metadata.csv.zip", tmp_path / "kaggle")
    assert not (tmp_path / "kaggle" / "metadata.csv.zip").exists()


def test_not_enough_disk_stops_before_the_download(
    tiny_dataset, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = competition_archives(tiny_dataset.data_dir)
    nearly_full = shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000)  # total, used, free
    monkeypatch.setattr("carvana.data.download.shutil.disk_usage", lambda path: nearly_full)
    with KaggleStub(files) as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        with pytest.raises(KaggleError, match=r"not enough disk for train\.zip: it needs .* GB .* are free"):
            download(cli, "train.zip", tmp_path / "kaggle")
        assert not any(path.endswith("DownloadDataFile") for _, path, _ in stub.requests)


def test_an_archive_entry_leaving_the_folder_is_refused_and_nothing_lands_outside(
    tiny_dataset, tmp_path: Path, home: Path
) -> None:
    files = competition_archives(tiny_dataset.data_dir)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train_masks.csv", "img,rle_mask\n")
        archive.writestr("../escaped.txt", "outside")
    files["train_masks.csv.zip"] = buffer.getvalue()
    archive_dir = tmp_path / "kaggle"
    with KaggleStub(files) as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        for name in files:
            download(cli, name, archive_dir)
    with pytest.raises(UnsafeArchiveError, match=r"entry '\.\./escaped\.txt' leaves the extraction folder"):
        import_local(LocalSpec(archive_dir), tmp_path / "data" / "nested")
    assert not list(tmp_path.rglob("escaped.txt"))
