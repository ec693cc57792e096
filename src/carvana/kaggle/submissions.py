"""The submission's upload and its score, through the kaggle CLI.

The CLI exits 0 even when an upload failed: success is its own "Successfully submitted" line.
After an upload, ``wait_for_score`` polls ``kaggle competitions submissions --csv`` (Kaggle's
ListSubmissions) until the row carrying the upload's unique tag in its description is scored or
fails, or the wait runs out; the CLI's list has no column for Kaggle's error text.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex

from carvana.kaggle.client import KaggleCLI, KaggleError, last_line

SUBMITTED = "Successfully submitted"
SUBMISSIONS_HEADER = "ref,fileName,date,description,status,publicScore,privateScore"


def submit(cli: KaggleCLI, submission_path: Path, message: str) -> str:
    """Upload the submission; return the CLI's success line. KaggleError unless Kaggle took it:
    the CLI exits 0 even when the upload failed, so success is its own success line."""
    if not submission_path.is_file():
        raise FileNotFoundError(
            f"{submission_path} does not exist: run "
            "`snakemake --cores all --configfile competition.yaml` first"
        )
    output = cli.run(
        "competitions", "submit", "-c", cli.competition, "-f", str(submission_path), "-m", message
    )
    for line in output.splitlines():
        if line.startswith(SUBMITTED):
            return line.strip()
    raise KaggleError(
        f"Kaggle did not accept {submission_path}: the kaggle CLI said {last_line(output)!r} "
        "(it exits 0 even then). Check results/submission_check.json and "
        "your remaining submissions today, then rerun "
        "`snakemake --cores 1 --configfile competition.yaml submit`"
    )


def upload_tag() -> str:
    """8 random hex digits: put in an upload's message, they find its row in Kaggle's list."""
    return token_hex(4)


@dataclass(frozen=True)
class SubmissionRow:
    """One row of ``kaggle competitions submissions --csv`` (one of Kaggle's ApiSubmission).

    ``status`` is pending, complete or error (the CLI prints SubmissionStatus.COMPLETE); the
    scores are the text Kaggle lists, empty until the submission is scored.
    """

    ref: str
    file_name: str
    date: str
    description: str
    status: str
    public_score: str
    private_score: str


def parse_submissions(output: str) -> list[SubmissionRow]:
    """The rows of ``kaggle competitions submissions --csv`` in Kaggle's order (newest first);
    KaggleError when the output is neither that list nor the CLI's "No submissions found"."""
    start = output.find(SUBMISSIONS_HEADER)
    if start < 0:
        if "No submissions found" in output:
            return []
        raise KaggleError(f"unexpected answer from `kaggle competitions submissions`: {last_line(output)}")
    rows = []
    for row in csv.DictReader(io.StringIO(output[start:])):
        values = {key: (value or "").strip() for key, value in row.items() if key is not None}
        rows.append(
            SubmissionRow(
                ref=values["ref"],
                file_name=values["fileName"],
                date=values["date"],
                description=values["description"],
                status=values["status"].rpartition(".")[2].lower(),
                public_score=values["publicScore"],
                private_score=values["privateScore"],
            )
        )
    return rows


def find_submission(rows: Sequence[SubmissionRow], tag: str) -> SubmissionRow | None:
    """The newest row whose description holds ``tag``; None while Kaggle does not list it."""
    return next((row for row in rows if tag in row.description), None)


@dataclass(frozen=True)
class ScoreWait:
    """How long to wait for Kaggle's score after an upload, and how often to look (seconds).
    ``wait_s`` 0 does not look at all."""

    wait_s: float
    poll_s: float

    def __post_init__(self) -> None:
        if not self.wait_s >= 0:
            raise ValueError(f"the wait for the score must be 0 s or more, got {self.wait_s}")
        if not self.poll_s > 0:
            raise ValueError(f"the poll interval must be over 0 s, got {self.poll_s}")


@dataclass(frozen=True)
class Score:
    """What became of an upload after the wait.

    ``status``: complete (scored), error (Kaggle could not score it), timeout (still pending or
    not yet listed when the wait ran out: ``last_seen`` says which) or not_waited (``wait_s`` 0).
    Scores are Kaggle's public and private scores, None when not listed. ``last_error`` is the
    last failed listing's message, when one failed.
    """

    status: str
    waited_s: float
    polls: int
    public_score: float | None = None
    private_score: float | None = None
    ref: str | None = None
    last_seen: str | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """For the receipt: the fields that have a value, seconds to 0.1."""
        fields = {
            "status": self.status,
            "public_score": self.public_score,
            "private_score": self.private_score,
            "waited_s": round(self.waited_s, 1),
            "polls": self.polls,
            "ref": self.ref,
            "last_seen": self.last_seen,
            "last_error": self.last_error,
        }
        return {key: value for key, value in fields.items() if value is not None}


def wait_for_score(
    list_submissions: Callable[[], str],
    tag: str,
    wait: ScoreWait,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Score:
    """Look at Kaggle's list of submissions (``list_submissions`` returns the CLI's CSV) every
    ``wait.poll_s`` seconds until the row whose description holds ``tag`` is complete or in error,
    for at most ``wait.wait_s`` seconds: the last look starts at the deadline, or after it where a
    listing outlasted the wait, so a slow listing never leaves a single look. A listing that fails
    is tried again at the next look: the upload went through, and the wait must not undo it."""
    if wait.wait_s == 0:
        return Score("not_waited", 0.0, 0)
    start = clock()
    polls = 0
    last_seen, last_error = "not listed", None
    while True:
        polls += 1
        looked_at_s = clock() - start
        try:
            row = find_submission(parse_submissions(list_submissions()), tag)
        except KaggleError as error:
            row, last_error = None, str(error)
            print(f"waiting for the score: listing failed ({error})", flush=True)
        waited_s = clock() - start
        if row is not None:
            last_seen = row.status
            if row.status in ("complete", "error"):
                return Score(
                    row.status,
                    waited_s,
                    polls,
                    public_score=_number(row.public_score),
                    private_score=_number(row.private_score),
                    ref=row.ref or None,
                    last_error=last_error,
                )
        print(f"waiting for the score: {last_seen} after {waited_s:.0f} s", flush=True)
        if looked_at_s >= wait.wait_s:  # a slow listing that ran past the deadline gets one more look
            return Score("timeout", waited_s, polls, last_seen=last_seen, last_error=last_error)
        sleep(max(0.0, min(wait.poll_s, wait.wait_s - waited_s)))


def score_message(score: Score, competition: str) -> str:
    """One paragraph on the score for the log: the score, or why there is none and how to look later."""
    later = f"`kaggle competitions submissions -c {competition}`"
    page = f"https://www.kaggle.com/competitions/{competition}/submissions"
    if score.status == "complete":
        private = "" if score.private_score is None else f", private score {score.private_score}"
        public = "none listed" if score.public_score is None else score.public_score
        return f"Kaggle scored the submission: public score {public}{private} (after {score.waited_s:.0f} s)"
    if score.status == "error":
        return (
            f"WARNING: Kaggle could not score the submission (status error, after {score.waited_s:.0f} s). "
            f"The upload went through and counts against today's submissions. Kaggle's reason is on "
            f"{page} (the kaggle CLI's list does not show it)"
        )
    if score.status == "timeout":
        seen = (
            "Kaggle did not list it yet"
            if score.last_seen == "not listed"
            else f"its status was {score.last_seen}"
        )
        failed = f"; the last listing failed: {score.last_error}" if score.last_error else ""
        return (
            f"WARNING: no score from Kaggle after waiting {score.waited_s:.0f} s ({score.polls} looks; "
            f"{seen}{failed}). The upload went through: do not submit it again. Look later with {later} "
            f"or on {page}"
        )
    return f"not waiting for the score (kaggle.score_wait_s is 0): look later with {later}"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
