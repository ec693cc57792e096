"""The kaggle source and the upload, driven through the unmodified kaggle CLI against a stub of
Kaggle's API on 127.0.0.1 (tests/kaggle_stub.py)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from carvana.data.archives import UnsafeArchiveError
from carvana.data.kaggle import (
    COMPETITION,
    Credentials,
    KaggleCLI,
    KaggleError,
    download,
    find_credentials,
    submit,
)
from carvana.data.local import LocalSpec, import_local
from kaggle_stub import SERVICE, KaggleStub, competition_archives

KEY = "f4k3k4gg13k3y0000000000000000000"  # recognisable, never to be printed


def cli_environ(stub: KaggleStub, home: Path, **extra: str) -> dict[str, str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **extra}
    return stub.environ(base)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


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


def test_without_credentials_the_message_says_how_to_make_a_token(tmp_path: Path, home: Path) -> None:
    with KaggleStub({}) as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home))
        with pytest.raises(KaggleError, match=r"no Kaggle credentials: create an API token at .*kaggle.json"):
            download(cli, "train.zip", tmp_path / "kaggle")
        assert stub.requests == []  # refused before the CLI ran


def test_a_rejected_token_is_a_401_with_the_fix(tmp_path: Path, home: Path) -> None:
    with KaggleStub({}, mode="401") as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        with pytest.raises(KaggleError) as caught:
            download(cli, "train.zip", tmp_path / "kaggle")
    message = str(caught.value)
    assert "rejected the credentials from KAGGLE_USERNAME and KAGGLE_KEY (HTTP 401)" in message
    assert "Create New Token" in message and KEY not in message


def test_rules_not_accepted_is_a_403_naming_the_rules_page(tmp_path: Path, home: Path) -> None:
    with KaggleStub({}, mode="403") as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        with pytest.raises(KaggleError, match=r"\(HTTP 403\): accept its rules at https://www\.kaggle\.com/"):
            download(cli, "train.zip", tmp_path / "kaggle")
    assert not (tmp_path / "kaggle" / "train.zip").exists()


def test_an_unreachable_api_says_so(tmp_path: Path, home: Path) -> None:
    with KaggleStub({}) as stub:
        environ = cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY)
    # the stub is gone: its port now refuses connections
    cli = KaggleCLI(environ=environ)
    with pytest.raises(KaggleError, match=r"cannot reach Kaggle's API: check the network connection"):
        download(cli, "train.zip", tmp_path / "kaggle")


def test_not_enough_disk_stops_before_the_download(
    tiny_dataset, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = competition_archives(tiny_dataset.data_dir)
    nearly_full = shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000)  # total, used, free
    monkeypatch.setattr("carvana.data.kaggle.shutil.disk_usage", lambda path: nearly_full)
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


def test_submit_uploads_and_returns_kaggles_success_line(tmp_path: Path, home: Path) -> None:
    submission = tmp_path / "submission.csv.gz"
    submission.write_bytes(b"\x1f\x8b fake gzip")
    with KaggleStub({}) as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        line = submit(cli, submission, "config competition.yaml; OOF Dice 0.99612")
        assert line == f"Successfully submitted to {COMPETITION}"
        assert list(stub.uploads.values()) == [submission.read_bytes()]
        assert stub.descriptions == ["config competition.yaml; OOF Dice 0.99612"]


def test_a_failed_upload_is_a_failure_although_the_cli_exits_0(tmp_path: Path, home: Path) -> None:
    submission = tmp_path / "submission.csv.gz"
    submission.write_bytes(b"\x1f\x8b fake gzip")
    with KaggleStub({}, mode="upload_fails") as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        with pytest.raises(KaggleError, match=r"Kaggle did not accept .*Could not submit to competition"):
            submit(cli, submission, "a message")
        assert not any(path == SERVICE + "CreateSubmission" for _, path, _ in stub.requests)


def test_a_credential_that_the_cli_prints_is_masked(tmp_path: Path, home: Path) -> None:
    with KaggleStub({}, mode="echo_key") as stub:
        cli = KaggleCLI(environ=cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY))
        with pytest.raises(KaggleError) as caught:
            download(cli, "train.zip", tmp_path / "kaggle")
    assert KEY not in str(caught.value) and "key *** is not valid" in str(caught.value)


def test_credentials_are_found_in_the_clis_order(home: Path) -> None:
    assert find_credentials({}, home) is None
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "file-key-1234"}')
    assert find_credentials({}, home) == Credentials(
        str(home / ".kaggle" / "kaggle.json"), ("file-key-1234",)
    )
    both = find_credentials({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "env-key-1234"}, home)
    assert both == Credentials("KAGGLE_USERNAME and KAGGLE_KEY", ("env-key-1234", "file-key-1234"))
    (home / ".kaggle" / "access_token").write_text("token-1234\n")
    first = find_credentials({"KAGGLE_API_TOKEN": "env-token-1234"}, home)
    assert first is not None and first.source == "KAGGLE_API_TOKEN"
    assert set(first.secrets) == {"env-token-1234", "token-1234", "file-key-1234"}  # all masked


def test_the_clis_config_folder_exists_before_the_cli_starts(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CLI makes ~/.config/kaggle itself without exist_ok: downloads started together on a
    # fresh machine raced for it, and all but one failed with FileExistsError
    seen = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append((home / ".config" / "kaggle").is_dir())
        return subprocess.CompletedProcess(command, 0, "ok\n", "")

    monkeypatch.setattr("carvana.data.kaggle.subprocess.run", fake_run)
    cli = KaggleCLI(environ={"HOME": str(home), "KAGGLE_USERNAME": "u", "KAGGLE_KEY": KEY})
    assert not (home / ".config").exists()
    assert cli.run("competitions", "files", "-c", "x") == "ok\n"
    assert seen == [True]
