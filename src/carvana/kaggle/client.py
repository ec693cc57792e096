"""The official kaggle CLI, run as a subprocess (``python -m kaggle``) with this process's
environment: its own credentials lookup (KAGGLE_API_TOKEN, KAGGLE_USERNAME/KAGGLE_KEY, or the
files in KAGGLE_CONFIG_DIR or ~/.kaggle) and its own proxy settings apply. Credentials are never
printed: any credential value that shows up in the CLI's output is masked before the output is
shown. A failure becomes a KaggleError whose message says why and how to fix it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from carvana import schema

TOKEN_PAGE = "https://www.kaggle.com/settings"
CLI_TIMEOUT_S = 6 * 3600  # the HQ test archive alone is tens of GB
LIST_TIMEOUT_S = 120  # one `kaggle competitions submissions` while waiting for a score
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

    competition: str = schema.default("kaggle.competition")
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
                f"machine needs a proxy), then rerun. The kaggle CLI said: {last_line(output)}"
            )
        if "no space left on device" in lowered:
            return (
                f"the disk filled up during the download: free some space, then rerun ({last_line(output)})"
            )
        if "permission denied" in lowered or "read-only file system" in lowered:
            return (
                "the kaggle CLI could not write a file it needs (its config folder under HOME, or "
                f"the download folder): {last_line(output)}"
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
        return f"the kaggle CLI failed (exit {returncode}): {last_line(output)}"

    def file_sizes(self) -> dict[str, int]:
        """The competition's files and their sizes in bytes, from ``kaggle competitions files``."""
        output = self.run("competitions", "files", "-c", self.competition, "--csv", "--page-size", "200")
        start = output.find("name,")
        if start < 0:
            raise KaggleError(f"unexpected answer from `kaggle competitions files`: {last_line(output)}")
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


def last_line(output: str) -> str:
    """The CLI's last non-blank line, cut to 300 characters: what a message quotes."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
