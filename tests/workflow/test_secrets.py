"""Kaggle credentials never reach a file: a whole run on the Kaggle stub (download, training,
prediction, the HTML report, the upload), one token in the environment and another in the
client's kaggle.json, then every file the run wrote is searched for either."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from workflow_runs import TINY, TINY_MODELS, environ, snakemake, workflow_copy

from kaggle_stub import KaggleStub, competition_archives

USER = "carvana-tester"
ENV_KEY = "e5c0ffee0123456789abcdef01234567"  # KAGGLE_KEY: what the download uses
FILE_KEY = "f11e5ec4e7fedcba9876543210fedcba"  # kaggle.json's key: what the upload uses


@pytest.mark.slow
def test_no_file_the_run_wrote_holds_a_kaggle_token(tiny_dataset, tmp_path: Path) -> None:
    work = workflow_copy(
        tmp_path,
        {
            **TINY,
            **{"dataset": "kaggle", "kaggle": {"full_competition": False}, "folds": {"n_folds": 2}},
            # on this split the tiny network may fail one fold: no flag stops the run here
            "tune": {"flag": {"min_dice": 0.0, "max_gap": 1.0}},
            # one model is every stage: the tokens are in every job's environment alike
            "models": {"unet1024": {**TINY_MODELS["unet1024"], "epochs": 1}},
        },
    )
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    scratch.mkdir()
    token_file = home / ".kaggle/kaggle.json"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(json.dumps({"username": USER, "key": FILE_KEY}))
    token_file.chmod(0o600)
    base = environ(work, HOME=str(home), TMPDIR=str(scratch))
    printed = []
    with KaggleStub(competition_archives(tiny_dataset.data_dir), lifetime_s=900) as stub:
        env = stub.environ({**base, "KAGGLE_USERNAME": USER, "KAGGLE_KEY": ENV_KEY})
        for args in (["--cores", "2"], ["--report", "results/report.html"]):
            result = snakemake(work, *args, env=env)
            printed.append(result.stdout + result.stderr)
        result = snakemake(work, "--cores", "1", "submit", env=stub.environ(base))  # kaggle.json only
        printed.append(result.stdout + result.stderr)
        assert len(stub.descriptions) == 1  # the upload happened
        # both tokens were really used: the download with the environment's, the upload with the file's
        assert {_basic(ENV_KEY), _basic(FILE_KEY)} <= stub.credentials

    written = [path for folder in (work, home, scratch) for path in folder.rglob("*") if path.is_file()]
    written.remove(token_file)
    assert (work / "results/report.html").stat().st_size > 100_000
    assert (work / "results/submission_receipt.json").is_file()
    assert len(written) > 100
    for key in (ENV_KEY, FILE_KEY):
        forms = _forms(key)
        leaks = [str(path) for path in written if any(form in path.read_bytes() for form in forms)]
        assert leaks == [], f"{key} in {leaks}"
        assert not any(form.decode() in text for form in forms for text in printed)


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{USER}:{key}".encode()).decode()


def _forms(key: str) -> list[bytes]:
    """The key as text, and as it reads inside base64 (the report embeds files that way) at each
    of the three offsets it may start at, edges cut where they mix with neighbouring bytes."""
    forms = [key.encode()]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + key.encode())
        forms.append(encoded[(offset * 4 + 2) // 3 + 1 : -3])
    return forms
