"""The upload and the wait for its score, through the unmodified kaggle CLI against a stub of
Kaggle's API on 127.0.0.1 (tests/kaggle_stub.py), by hand and as ``carvana submit``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from carvana.cli import main as cli_main
from carvana.competition import COMPETITION
from carvana.kaggle.client import KaggleCLI, KaggleError
from carvana.kaggle.submissions import (
    Score,
    ScoreWait,
    find_submission,
    parse_submissions,
    score_message,
    submit,
    wait_for_score,
)
from kaggle_stub import KEY, SERVICE, KaggleStub, cli_environ


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


# After the upload: waiting for Kaggle's score.

LISTED = """\
Warning: a line the CLI may print first
ref,fileName,date,description,status,publicScore,privateScore
1002,sub.csv.gz,2026-05-02 10:00:00.123000,"[0a1b2c3d] config a.yaml, again",SubmissionStatus.PENDING,,
1001,sub.csv.gz,2026-05-01 09:00:00,[9f8e7d6c] config a.yaml,SubmissionStatus.COMPLETE,0.99612,0.99587
1000,other.csv,2026-04-30 08:00:00,[77777777] a broken file,SubmissionStatus.ERROR,,
"""


def test_the_clis_submission_list_is_read_row_by_row() -> None:
    rows = parse_submissions(LISTED)
    assert [row.ref for row in rows] == ["1002", "1001", "1000"]
    assert [row.status for row in rows] == ["pending", "complete", "error"]
    assert rows[0].description == "[0a1b2c3d] config a.yaml, again"  # the quoted comma
    assert (rows[1].public_score, rows[1].private_score) == ("0.99612", "0.99587")
    assert (rows[0].public_score, rows[2].file_name) == ("", "other.csv")
    assert parse_submissions("No submissions found\n") == []
    with pytest.raises(KaggleError, match="unexpected answer from `kaggle competitions submissions`"):
        parse_submissions("<html>gateway timeout</html>")


def test_our_row_is_the_one_with_our_tag_not_the_newest_with_our_file_name() -> None:
    rows = parse_submissions(LISTED)
    ours = find_submission(rows, "9f8e7d6c")
    assert ours is not None and ours.ref == "1001"
    assert find_submission(rows, "12345678") is None


def _listing(status: str, public: str = "", tag: str = "9f8e7d6c") -> str:
    return (
        "ref,fileName,date,description,status,publicScore,privateScore\n"
        "5,submission.csv.gz,2026-05-02 10:00:00,[0a1b2c3d] older,SubmissionStatus.COMPLETE,0.5,0.5\n"
        f"6,submission.csv.gz,2026-05-02 11:00:00,[{tag}] this upload,SubmissionStatus.{status},{public},\n"
    )


class FakeClock:
    """A clock that only sleeping moves: the loop's timing without waiting."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_the_wait_looks_every_poll_until_the_score_is_listed() -> None:
    answers = iter(["No submissions found", _listing("PENDING"), _listing("COMPLETE", "0.99612")])
    fake = FakeClock()
    score = wait_for_score(lambda: next(answers), "9f8e7d6c", ScoreWait(600, 30), fake.sleep, fake.clock)
    assert score == Score("complete", 60.0, 3, public_score=0.99612, ref="6")
    assert fake.sleeps == [30, 30]


def test_the_wait_ends_at_its_limit_and_survives_a_failed_listing() -> None:
    def listing() -> str:
        calls.append(fake.now)
        if len(calls) == 2:
            raise KaggleError("cannot reach Kaggle's API")
        return _listing("PENDING")

    calls: list[float] = []
    fake = FakeClock()
    score = wait_for_score(listing, "9f8e7d6c", ScoreWait(70, 30), fake.sleep, fake.clock)
    # looks at 0, 30, 60 and 70 s: the last one at the limit, none after
    assert [t - 1000 for t in calls] == [0, 30, 60, 70] and fake.sleeps == [30, 30, 10]
    assert score == Score("timeout", 70.0, 4, last_seen="pending", last_error="cannot reach Kaggle's API")
    error = wait_for_score(lambda: _listing("ERROR"), "9f8e7d6c", ScoreWait(70, 30), fake.sleep, fake.clock)
    assert (error.status, error.polls, error.public_score) == ("error", 1, None)


def test_a_listing_slower_than_the_wait_still_gets_a_look_at_the_deadline() -> None:
    """A loaded machine (or a slow API) may take longer to list than the whole wait: the wait
    still ends with a look that starts at or after its deadline, never with the first look alone."""

    def slow_listing() -> str:
        calls.append(fake.now)
        fake.now += 2.5  # each listing takes 2.5 s of a 1.5 s wait
        return _listing("PENDING")

    calls: list[float] = []
    fake = FakeClock()
    score = wait_for_score(slow_listing, "9f8e7d6c", ScoreWait(1.5, 0.2), fake.sleep, fake.clock)
    assert [t - 1000 for t in calls] == [0, 2.5] and fake.sleeps == [0.0]
    assert score == Score("timeout", 5.0, 2, last_seen="pending")


def test_a_wait_of_0_does_not_look_and_bad_waits_are_refused() -> None:
    def listing() -> str:
        raise AssertionError("listed although the wait is 0")

    assert wait_for_score(listing, "9f8e7d6c", ScoreWait(0, 30)) == Score("not_waited", 0.0, 0)
    with pytest.raises(ValueError, match="0 s or more, got -1"):
        ScoreWait(-1, 30)
    with pytest.raises(ValueError, match="over 0 s, got 0"):
        ScoreWait(600, 0)


def test_the_messages_say_the_score_or_what_to_do() -> None:
    scored = score_message(Score("complete", 42.4, 3, 0.99612, 0.99587), COMPETITION)
    assert scored == "Kaggle scored the submission: public score 0.99612, private score 0.99587 (after 42 s)"
    late = score_message(Score("timeout", 601.2, 21, last_seen="pending"), COMPETITION)
    assert late.startswith(
        "WARNING: no score from Kaggle after waiting 601 s (21 looks; its status was pending)"
    )
    assert f"`kaggle competitions submissions -c {COMPETITION}`" in late
    failed = score_message(Score("error", 12.0, 2), COMPETITION)
    assert failed.startswith("WARNING: Kaggle could not score the submission (status error, after 12 s)")
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/submissions" in failed


def _submit_through_the_cli(
    stub: KaggleStub,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wait_s: float,
    poll_s: float = 0.2,
) -> tuple[int, dict[str, Any]]:
    """``carvana submit`` against the stub, the kaggle CLI reading this process's environment;
    the exit status and the receipt."""
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in cli_environ(stub, home, KAGGLE_USERNAME="someone", KAGGLE_KEY=KEY).items():
        monkeypatch.setenv(name, value)
    submission, thresholds = tmp_path / "submission.csv.gz", tmp_path / "thresholds.json"
    submission.write_bytes(b"\x1f\x8b fake gzip")
    thresholds.write_text(json.dumps({"ensemble": {"dice": 0.99701}, "threshold": 0.5}))
    receipt_path = tmp_path / "submission_receipt.json"
    status = cli_main(
        [
            "submit",
            f"--submission-path={submission}",
            f"--thresholds-path={thresholds}",
            f"--receipt-path={receipt_path}",
            "--config=competition.yaml",
            "--dataset=kaggle",
            f"--score-wait-s={wait_s}",
            f"--score-poll-s={poll_s}",
        ]
    )
    return status, json.loads(receipt_path.read_text())


def _listings(stub: KaggleStub) -> int:
    return sum(path == SERVICE + "ListSubmissions" for _, path, _ in stub.requests)


EARLIER = {  # an older submission of the same file, listed below ours
    "ref": 7,
    "fileName": "submission.csv.gz",
    "date": "2026-01-02T03:04:05.678Z",
    "description": "[0a1b2c3d] config competition.yaml; OOF Dice 0.99000 at threshold 0.50",
    "status": "COMPLETE",
    "publicScore": "0.98000",
    "privateScore": "0.97900",
}


def test_submit_waits_for_the_public_score_and_writes_it_to_the_receipt(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with KaggleStub({}, lifetime_s=60) as stub:
        stub.score_after, stub.earlier = 2, [EARLIER]  # pending twice, then scored
        status, receipt = _submit_through_the_cli(stub, home, tmp_path, monkeypatch, wait_s=30)
        assert _listings(stub) == 3
        assert receipt["message"] == stub.descriptions[0]
    assert status == 0
    assert re.fullmatch(
        r"\[[0-9a-f]{8}\] config competition\.yaml; OOF Dice 0\.99701 at threshold 0\.50", receipt["message"]
    )
    assert receipt["kaggle"] == f"Successfully submitted to {COMPETITION}"
    score = receipt["score"]
    assert (score["status"], score["public_score"], score["private_score"]) == ("complete", 0.99612, 0.99587)
    assert score["polls"] == 3 and score["ref"] == "1000" and 0.4 <= score["waited_s"] < 30
    printed = capsys.readouterr()
    assert "Kaggle scored the submission: public score 0.99612, private score 0.99587" in printed.out
    assert "WARNING" not in printed.out + printed.err


def test_a_scoring_error_is_said_and_recorded_and_the_job_succeeds(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with KaggleStub({}, lifetime_s=60) as stub:
        stub.score_after, stub.score_status = 1, "ERROR"
        status, receipt = _submit_through_the_cli(stub, home, tmp_path, monkeypatch, wait_s=30)
        assert _listings(stub) == 2 and len(stub.uploads) == 1
    assert status == 0  # the upload went through: a failed job would lose the receipt and upload again
    assert receipt["score"]["status"] == "error" and receipt["score"]["polls"] == 2
    assert "public_score" not in receipt["score"]
    err = capsys.readouterr().err
    assert "WARNING: Kaggle could not score the submission (status error" in err
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/submissions" in err


def test_a_score_that_does_not_come_is_a_timeout_that_says_how_to_look_later(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with KaggleStub({}, lifetime_s=60) as stub:
        stub.score_after = None  # pending for ever
        status, receipt = _submit_through_the_cli(stub, home, tmp_path, monkeypatch, wait_s=1.5)
        looks = _listings(stub)
    assert status == 0
    score = receipt["score"]
    assert (score["status"], score["last_seen"], score["polls"]) == ("timeout", "pending", looks)
    assert looks >= 2 and 1.5 <= score["waited_s"] < 15
    err = capsys.readouterr().err
    waited = re.search(r"WARNING: no score from Kaggle after waiting (\d+) s \((\d+) looks; its status", err)
    assert waited is not None and int(waited[2]) == looks
    assert abs(int(waited[1]) - score["waited_s"]) <= 0.6  # whole seconds printed, tenths in the receipt
    assert f"Look later with `kaggle competitions submissions -c {COMPETITION}`" in err


def test_a_wait_of_0_uploads_without_looking_for_the_score(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with KaggleStub({}, lifetime_s=60) as stub:
        status, receipt = _submit_through_the_cli(stub, home, tmp_path, monkeypatch, wait_s=0)
        assert len(stub.uploads) == 1 and _listings(stub) == 0
    assert status == 0
    assert receipt["score"] == {"status": "not_waited", "waited_s": 0.0, "polls": 0}
    assert "not waiting for the score (kaggle.score_wait_s is 0)" in capsys.readouterr().err
