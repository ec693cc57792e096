"""The ``kaggle`` data source and the submission upload, through the official kaggle CLI.

The CLI runs as a subprocess (``python -m kaggle``), with this process's environment: its own
credentials lookup (KAGGLE_API_TOKEN, KAGGLE_USERNAME/KAGGLE_KEY, or the files in
KAGGLE_CONFIG_DIR or ~/.kaggle) and its own proxy settings apply. Credentials are never printed:
any credential value that shows up in the CLI's output is masked before the output is shown.

A download takes one archive at a time into a hidden folder beside its final place, checks its
size against the competition's file list and that it is a zip, and only then renames it into
place, so an interrupted download never leaves an archive that looks whole. An archive already
there with the listed size is kept. The CLI does not unzip; ``carvana.data.local`` extracts.

After an upload, ``wait_for_score`` polls ``kaggle competitions submissions --csv`` (Kaggle's
ListSubmissions) until the row carrying the upload's unique tag in its description is scored or
fails, or the wait runs out; the CLI's list has no column for Kaggle's error text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex

from carvana.competition import COMPETITION

TOKEN_PAGE = "https://www.kaggle.com/settings"
CLI_TIMEOUT_S = 6 * 3600  # the HQ test archive alone is tens of GB
SUBMITTED = "Successfully submitted"
LIST_TIMEOUT_S = 120  # one `kaggle competitions submissions` while waiting for a score
SUBMISSIONS_HEADER = "ref,fileName,date,description,status,publicScore,privateScore"
NETWORK_SIGNS = (
    "max retries exceeded",
    "connection refused",
    "name or service not known",
    "temporary failure in name resolution",
    "proxyerror",
    "network is unreachable",
)


class KaggleError(RuntimeError):
    """The kaggle CLI could not do what was asked; the message says why and how to fix it."""


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


def rules_page(competition: str) -> str:
    return f"https://www.kaggle.com/competitions/{competition}/rules"


@dataclass(frozen=True)
class Credentials:
    """Where the CLI will find credentials (for messages) and the values to mask in its output."""

    source: str
    secrets: tuple[str, ...]


def find_credentials(environ: Mapping[str, str], home: Path) -> Credentials | None:
    """The credentials the kaggle CLI 2.x would use, in its order: KAGGLE_API_TOKEN (the token or
    a file of it), ~/.kaggle/access_token(.txt), KAGGLE_USERNAME/KAGGLE_KEY, kaggle.json in its
    config folder, then a `kaggle auth login` in ~/.kaggle/credentials.json. None when there are
    none. Every credential value found is masked, whichever one the CLI ends up using."""
    found: list[tuple[str, str]] = []  # (source, secret)
    token = environ.get("KAGGLE_API_TOKEN", "")
    if token:
        found.append(("KAGGLE_API_TOKEN", token))
        if Path(token).is_file():
            found.append(("KAGGLE_API_TOKEN", Path(token).read_text().strip()))
    for name in ("access_token", "access_token.txt"):
        path = home / ".kaggle" / name
        saved = path.read_text().strip() if path.is_file() else ""
        if saved:
            found.append((str(path), saved))
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        found.append(("KAGGLE_USERNAME and KAGGLE_KEY", environ["KAGGLE_KEY"]))
    config_file = _config_dir(environ, home) / "kaggle.json"
    if config_file.is_file():
        try:
            key = str(json.loads(config_file.read_text()).get("key", ""))
        except (ValueError, AttributeError):
            raise KaggleError(
                f"{config_file} is not valid JSON: download a new token from {TOKEN_PAGE}"
            ) from None
        if key:
            found.append((str(config_file), key))
    login = home / ".kaggle" / "credentials.json"
    if login.is_file():
        text = login.read_text()
        found.append((f"{login} (kaggle auth login)", text))
        with contextlib.suppress(ValueError, AttributeError):  # its values too, one by one
            found += [(str(login), str(v)) for v in json.loads(text).values() if isinstance(v, str)]
    if not found:
        return None
    return Credentials(found[0][0], tuple(secret for _, secret in found))


def _config_dir(environ: Mapping[str, str], home: Path) -> Path:
    """Where the kaggle CLI looks for kaggle.json."""
    if environ.get("KAGGLE_CONFIG_DIR"):
        return Path(environ["KAGGLE_CONFIG_DIR"])
    if (home / ".kaggle").is_dir():
        return home / ".kaggle"
    return Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"


def no_credentials_message(home: Path) -> str:
    return (
        "no Kaggle credentials: create an API token at "
        f"{TOKEN_PAGE} (Account > API > Create New Token), save the downloaded kaggle.json as "
        f"{home / '.kaggle' / 'kaggle.json'} (chmod 600), or set KAGGLE_USERNAME and KAGGLE_KEY "
        "(or KAGGLE_API_TOKEN) in the environment; then rerun"
    )


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every credential value replaced by ***."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class KaggleCLI:
    """Runs ``python -m kaggle`` with checked credentials and explains its failures."""

    competition: str = COMPETITION
    environ: Mapping[str, str] | None = None

    def _environ(self) -> dict[str, str]:
        return dict(os.environ if self.environ is None else self.environ)

    def credentials(self) -> Credentials:
        environ = self._environ()
        home = Path(environ.get("HOME", Path.home()))
        found = find_credentials(environ, home)
        if found is None:
            raise KaggleError(no_credentials_message(home))
        return found

    def run(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """The CLI's stdout (progress bars go to stderr), masked; KaggleError when it fails."""
        credentials = self.credentials()
        environ = self._environ()
        # The CLI makes its config folder when it is missing, without exist_ok: of several
        # downloads started at once on a fresh machine, all but one would fail. Made here first.
        _config_dir(environ, Path(environ.get("HOME", Path.home()))).mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                [sys.executable, "-m", "kaggle", *args],
                env=environ,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise KaggleError(f"the kaggle CLI ran for over {timeout_s:g} s: {' '.join(args[:2])}") from None
        if result.returncode != 0:
            output = mask(result.stdout + result.stderr, credentials.secrets)
            raise KaggleError(self.explain(output, result.returncode, credentials))
        return mask(result.stdout, credentials.secrets)

    def explain(self, output: str, returncode: int, credentials: Credentials) -> str:
        lowered = output.lower()
        if any(sign in lowered for sign in NETWORK_SIGNS):
            return (
                "cannot reach Kaggle's API: check the network connection (and HTTPS_PROXY if this "
                f"machine needs a proxy), then rerun. The kaggle CLI said: {_last_line(output)}"
            )
        if "no space left on device" in lowered:
            return (
                f"the disk filled up during the download: free some space, then rerun ({_last_line(output)})"
            )
        if "permission denied" in lowered or "read-only file system" in lowered:
            return (
                "the kaggle CLI could not write a file it needs (its config folder under HOME, or "
                f"the download folder): {_last_line(output)}"
            )
        if "authentication required" in lowered or re.search(r"\b401\b|unauthori[sz]ed", lowered):
            return (
                f"Kaggle rejected the credentials from {credentials.source} (HTTP 401): the token "
                f"may be expired or revoked. Create a new one at {TOKEN_PAGE} (Account > API > "
                "Create New Token) and replace the old one; then rerun"
            )
        if re.search(r"\b403\b|forbidden", lowered):
            return (
                f"Kaggle refused access to the competition {self.competition!r} (HTTP 403): accept "
                f"its rules at {rules_page(self.competition)} with the account of these "
                "credentials, then rerun"
            )
        return f"the kaggle CLI failed (exit {returncode}): {_last_line(output)}"

    def file_sizes(self) -> dict[str, int]:
        """The competition's files and their sizes in bytes, from ``kaggle competitions files``."""
        output = self.run("competitions", "files", "-c", self.competition, "--csv", "--page-size", "200")
        start = output.find("name,")
        if start < 0:
            raise KaggleError(f"unexpected answer from `kaggle competitions files`: {_last_line(output)}")
        rows = csv.DictReader(io.StringIO(output[start:]))
        try:
            return {row["name"]: int(row["size"]) for row in rows if row.get("name")}
        except (KeyError, ValueError):
            raise KaggleError(f"unexpected file list from Kaggle: {output[start : start + 200]!r}") from None

    def submissions(self) -> str:
        """``kaggle competitions submissions --csv``: this account's newest 20 submissions to the
        competition, newest first (Kaggle's ListSubmissions, sorted by date)."""
        args = ("competitions", "submissions", "-c", self.competition, "--csv", "--page-size", "20")
        return self.run(*args, timeout_s=LIST_TIMEOUT_S)


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
        f"Kaggle did not accept {submission_path}: the kaggle CLI said {_last_line(output)!r} "
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
        raise KaggleError(f"unexpected answer from `kaggle competitions submissions`: {_last_line(output)}")
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
    for at most ``wait.wait_s`` seconds (the last look starts at the deadline). A listing that fails
    is tried again at the next look: the upload went through, and the wait must not undo it."""
    if wait.wait_s == 0:
        return Score("not_waited", 0.0, 0)
    start = clock()
    polls = 0
    last_seen, last_error = "not listed", None
    while True:
        polls += 1
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
        if waited_s >= wait.wait_s:
            return Score("timeout", waited_s, polls, last_seen=last_seen, last_error=last_error)
        sleep(min(wait.poll_s, wait.wait_s - waited_s))


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


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
