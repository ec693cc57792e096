"""A stand-in for Kaggle's API on 127.0.0.1, for the unmodified kaggle CLI.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the CLI addresses http://localhost/api/v1/...; with
HTTP_PROXY pointing at this server, those requests arrive here (the request line carries the full
URL), so the stub needs no privileged port. It serves the competition's file list, one file per
DownloadDataFile (a redirect to /files/<name>, as Kaggle answers), and a submission's three steps
(StartSubmissionUpload, the PUT of the bytes, CreateSubmission), and ListSubmissions: the
submissions it received, newest first, after any ``earlier`` ones. Each received submission
answers PENDING to its first ``score_after`` listings, then ``score_status``: COMPLETE with
``public_score`` and ``private_score``, or ERROR with ``error_description``; ``score_after=None``
keeps it pending. ``mode`` makes it fail as Kaggle does: "401", "403", "upload_fails" (the PUT is
refused), "echo_key" (an error quoting the key).
"""

from __future__ import annotations

import base64
import io
import json
import os
import urllib.parse
import zipfile
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from carvana.data.download import archive_names
from loopback import LoopbackServer

SERVICE = "/api/v1/competitions.CompetitionApiService/"
KEY = "f4k3k4gg13k3y0000000000000000000"  # recognisable, never to be printed


def cli_environ(stub: KaggleStub, home: Path, **extra: str) -> dict[str, str]:
    """The kaggle CLI's environment against ``stub``: this PATH, HOME ``home``, and ``extra``."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **extra}
    return stub.environ(base)


def competition_archives(data_dir: Path) -> dict[str, bytes]:
    """The competition's standard archives of a dataset in its layout, as Kaggle serves them."""
    archives = {}
    for name in archive_names(hq=False):
        part = data_dir / name.removesuffix(".zip")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            if part.is_dir():
                for path in sorted(part.iterdir()):
                    archive.write(path, f"{part.name}/{path.name}")
            else:
                archive.write(part, part.name)
        archives[name] = buffer.getvalue()
    return archives


class KaggleStub(LoopbackServer):
    """``with KaggleStub(files) as stub:`` serves until the block ends or ``lifetime_s`` passes."""

    def __init__(self, files: dict[str, bytes], mode: str = "ok", lifetime_s: float = 120.0) -> None:
        self.files, self.mode = files, mode
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, JSON body)
        self.uploads: dict[str, bytes] = {}
        self.credentials: set[str] = set()  # Authorization headers received
        self.descriptions: list[str] = []
        self.listed: dict[str, int] = {}  # sizes to list instead of the files' own
        self.file_names: dict[str, str] = {}  # upload token -> the file name StartSubmissionUpload named
        self.submissions: list[dict[str, Any]] = []  # received, oldest first, with "listings" seen
        self.earlier: list[dict[str, Any]] = []  # ApiSubmission JSON listed after the received ones
        self.score_after: int | None = 0
        self.score_status = "COMPLETE"
        self.public_score, self.private_score = "0.99612", "0.99587"
        self.error_description = "Submission file has the wrong number of rows"
        super().__init__(lifetime_s)

    @property
    def proxy(self) -> str:
        return self.url

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` plus what sends the kaggle CLI here."""
        return {
            **base,
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "HTTP_PROXY": self.proxy,
            "http_proxy": self.proxy,
            "NO_PROXY": "",
            "no_proxy": "",
        }

    def listing(self, received: dict[str, Any]) -> dict[str, Any]:
        """A received submission as ListSubmissions shows it this time (ApiSubmission's JSON)."""
        received["listings"] += 1
        row = {key: value for key, value in received.items() if key != "listings"}
        if self.score_after is None or received["listings"] <= self.score_after:
            return {**row, "status": "PENDING"}
        if self.score_status == "ERROR":
            return {**row, "status": "ERROR", "errorDescription": self.error_description}
        return {
            **row,
            "status": self.score_status,
            "publicScore": self.public_score,
            "privateScore": self.private_score,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def send(
                self, code: int, body: bytes | dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(code)
                kind = "application/json" if isinstance(body, dict) else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw and path.startswith("/api/") else {}
                stub.requests.append((self.command, path, body))
                stub.credentials.add(self.headers.get("Authorization", ""))
                if path.startswith("/api/") and stub.mode == "401":
                    return self.send(401, {"code": 401, "message": "Unauthenticated"})
                if path.startswith("/api/") and stub.mode == "echo_key":  # a server that quotes the key
                    user, _, key = (
                        base64.b64decode(self.headers["Authorization"].split()[1]).decode().partition(":")
                    )
                    return self.send(400, {"code": 400, "message": f"key {key} is not valid for {user}"})
                if path.startswith("/api/") and stub.mode == "403":
                    return self.send(403, b"Forbidden")
                if path == SERVICE + "ListDataFiles":
                    files = [
                        {"name": name, "totalBytes": stub.listed.get(name, len(data))}
                        for name, data in stub.files.items()
                    ]
                    return self.send(200, {"files": files})
                if path == SERVICE + "DownloadDataFile":
                    name = urllib.parse.quote(body["fileName"])
                    return self.send(302, b"", {"Location": f"/files/{name}"})
                if self.command == "GET" and path.startswith("/files/"):
                    name = urllib.parse.unquote(path.removeprefix("/files/"))
                    if name not in stub.files:
                        return self.send(404, {"code": 404, "message": f"no file {name}"})
                    return self.send(200, stub.files[name])
                if path == SERVICE + "StartSubmissionUpload":
                    token = f"blob-{len(stub.file_names) + 1}"
                    stub.file_names[token] = body.get("fileName", "")
                    return self.send(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})
                if self.command == "PUT" and path.startswith("/upload/"):
                    if stub.mode == "upload_fails":
                        return self.send(503, b"Service Unavailable")
                    stub.uploads[path.removeprefix("/upload/")] = raw
                    return self.send(200, {})
                if path == SERVICE + "CreateSubmission":
                    if body.get("blobFileTokens") not in stub.uploads:
                        return self.send(400, {"code": 400, "message": "unknown upload"})
                    stub.descriptions.append(body.get("submissionDescription", ""))
                    stub.submissions.append(
                        {
                            "ref": 1000 + len(stub.submissions),
                            "fileName": stub.file_names[body["blobFileTokens"]],
                            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                            "description": body.get("submissionDescription", ""),
                            "listings": 0,
                        }
                    )
                    return self.send(200, {"message": f"Successfully submitted to {body['competitionName']}"})
                if path == SERVICE + "ListSubmissions":
                    listed = [stub.listing(received) for received in reversed(stub.submissions)]
                    return self.send(200, {"submissions": listed + stub.earlier})
                if path == SERVICE + "GetSubmissionLimits":
                    return self.send(200, {"numAllowedNow": 4})
                return self.send(404, {"code": 404, "message": f"stub: no route for {self.command} {path}"})

            do_GET = do_POST = do_PUT = handle_any  # noqa: N815 (the names http.server calls)

        return Handler
