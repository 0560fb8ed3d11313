"""A loopback HTTP server that stands in for a user's image host, webhook receiver and upload endpoint."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


class Receiver:
    """A loopback HTTP server that serves an image, and records webhook POSTs and upload PUTs."""

    def __init__(self):
        self.requests: list[dict] = []
        self.failures_left: dict[str, int] = {}
        buffer = io.BytesIO()
        Image.new("RGB", (320, 180), (30, 90, 200)).save(buffer, format="JPEG")
        self.image = buffer.getvalue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "body": body})
                left = receiver.failures_left.get(self.path, 0)
                if left:
                    receiver.failures_left[self.path] = left - 1
                    self.send_response(500)
                else:
                    self.send_response(200)
                self.end_headers()

            do_POST = do_PUT = _record

            def do_GET(self):
                receiver.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers), "body": b""})
                if self.path == "/redirect-to-metadata":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(receiver.image)))
                self.end_headers()
                self.wfile.write(receiver.image)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, method: str, path: str, count: int = 1, timeout: float = 60) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [r for r in self.requests if r["method"] == method and r["path"] == path]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"{count} {method} {path} expected, got {self.requests}")
