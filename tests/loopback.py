"""A test server on 127.0.0.1 with a bounded lifetime, shared by the stand-ins for Kaggle's API
and for the servers pretrained weights come from."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackServer:
    """``with Subclass(...) as server:`` serves on a free port of 127.0.0.1 until the block ends or
    ``lifetime_s`` passes, whichever comes first. A subclass gives its request handler class."""

    def __init__(self, lifetime_s: float) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.watchdog = threading.Timer(lifetime_s, self.server.shutdown)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.watchdog.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
