"""A stand-in on 127.0.0.1 for the servers pretrained weights come from: torchvision's file store
(``GET /<file>``) and the Hugging Face hub (``HEAD``/``GET /<repo>/resolve/<revision>/<file>``,
with the headers ``huggingface_hub`` reads: the commit, the file's etag and size).

A hub file is served with the etag the hub gives a large file, its sha256, unless ``etags``
names another: a file whose bytes do not match the etag it is served with is a damaged download.
"""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import LoopbackServer


class WeightsServer(LoopbackServer):
    """``with WeightsServer({"/vgg.pth": data}) as server:`` serves until the block ends or
    ``lifetime_s`` passes; ``server.requests`` lists (method, path) as they came."""

    def __init__(
        self, files: dict[str, bytes], etags: dict[str, str] | None = None, lifetime_s: float = 120.0
    ) -> None:
        self.files = files
        self.etags = etags or {}
        self.requests: list[tuple[str, str]] = []
        super().__init__(lifetime_s)

    def downloads(self) -> list[str]:
        """The paths whose bytes were sent (GET requests)."""
        return [path for method, path in self.requests if method == "GET"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        served = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                served.requests.append((self.command, path))
                data = served.files.get(path)
                if data is None:
                    message = b"not found"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message if body else b"")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                if "/resolve/" in path:  # the hub: commit, etag and size of the file
                    revision = path.split("/resolve/", 1)[1].split("/", 1)[0]
                    etag = served.etags.get(path, hashlib.sha256(data).hexdigest())
                    self.send_header("X-Repo-Commit", revision)
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("ETag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self.answer(body=True)

            def do_HEAD(self) -> None:
                self.answer(body=False)

        return Handler
