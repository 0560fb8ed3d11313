"""A recording HTTP server on a loopback port, for tests of what the server sends out (delivery, the SSRF guard).

Subclass `RecordingHandler` and give it `respond(url)`; every request is recorded on the server before it is answered.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import SplitResult, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    """The request target as sent, query string included."""
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path


class RecordingHandler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.recorded.append(Recorded(self.command, self.path, headers, body))
        self.respond(urlsplit(self.path))

    do_POST = do_PUT = do_GET

    def respond(self, url: SplitResult) -> None:
        raise NotImplementedError


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, handler: type[RecordingHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.port = self.server_address[1]
        self.recorded: list[Recorded] = []
        self.stop = threading.Event()
        """Set when the test ends, so that handlers still waiting give up."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients under test hang up on purpose (caps, timeouts)
            super().handle_error(request, client_address)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def serving(server: LoopbackServer) -> Iterator[LoopbackServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
