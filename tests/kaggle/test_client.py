"""The kaggle CLI's failures explained and its credentials kept out of sight, driven against a stub
of Kaggle's API on 127.0.0.1 (tests/kaggle_stub.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from carvana.data.download import download
from carvana.kaggle.client import Credentials, KaggleCLI, KaggleError, find_credentials
from kaggle_stub import KEY, KaggleStub, cli_environ


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

    monkeypatch.setattr("carvana.kaggle.client.subprocess.run", fake_run)
    cli = KaggleCLI(environ={"HOME": str(home), "KAGGLE_USERNAME": "u", "KAGGLE_KEY": KEY})
    assert not (home / ".config").exists()
    assert cli.run("competitions", "files", "-c", "x") == "ok\n"
    assert seen == [True]
