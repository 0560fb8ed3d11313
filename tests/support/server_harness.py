"""Start the real server (`ltx-runtime serve`) as a separate process on a loopback port, and talk to it."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from support.postgres_harness import server_store_url

API_KEY = "test-key-alpha"
OTHER_KEY = "test-key-beta"


PORTS_PER_WORKER = 1000
FIRST_PORT = 20000
"""Test servers listen on ports below Linux's ephemeral range (32768-60999): a port the kernel hands out for a bind
to port 0 or an outgoing connection cannot be the one a server is about to bind. Each pytest-xdist worker (gw0,
gw1, ...) has its own 1,000 of them, so two workers never pick the same port."""


def _worker_ports():
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    first = FIRST_PORT + worker * PORTS_PER_WORKER
    start = random.randrange(PORTS_PER_WORKER)  # another pytest run on this machine likely starts elsewhere
    while True:
        for offset in range(PORTS_PER_WORKER):
            yield first + (start + offset) % PORTS_PER_WORKER


_ports = _worker_ports()


def free_port() -> int:
    """A loopback port nobody listens on, never one this process handed out recently (a server restarted on its
    old port is given that port explicitly)."""
    for port in itertools.islice(_ports, PORTS_PER_WORKER):
        with socket.socket() as probe_socket:
            try:
                probe_socket.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"every port of this worker's range from {FIRST_PORT} is taken")


class ServerProcess:
    def __init__(self, data_dir: Path, tiny_root: Path, port: int | None = None, demo: bool = True, **env: str):
        """`demo`: started with --demo, as every test server is unless it checks what happens without it."""
        self.data_dir = data_dir
        self.demo = demo
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "LTX_DATA_DIR": str(data_dir),
            "LTX_PORT": str(self.port),
            "LTX_API_KEYS": f"{API_KEY},{OTHER_KEY}",
            "LTX_X264_PRESET": "ultrafast",
            "LTX_TINY_DIR": str(tiny_root),  # the session's tiny weights, instead of building them again
            **env,
        }
        if "LTX_DATABASE_URL" not in self.env and (url := server_store_url(data_dir)):
            self.env["LTX_DATABASE_URL"] = url  # LTX_TEST_STORE=postgres
        self.store_url = self.env.get("LTX_DATABASE_URL") or f"sqlite:///{data_dir / 'tasks.sqlite3'}"
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120, until: str = "/health/ready") -> "ServerProcess":
        """Start the server and wait until `until` answers 200 (/health/live: serving, even with no worker ready)."""
        self.launch()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base + until, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log()}")

    def launch(self) -> subprocess.Popen:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", *(["--demo"] if self.demo else [])], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self.process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def post(self, tasks, key: str | None = API_KEY, raw: bytes | None = None) -> tuple[int, dict]:
        body = raw if raw is not None else json.dumps(tasks).encode()
        request = urllib.request.Request(self.base + "/v1", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def wait_for_results(self, task_uuid: str, key: str = API_KEY, timeout: float = 300) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body = self.post([{"taskType": "getResponse", "taskUUID": task_uuid}], key=key)
            if "errors" in body:
                raise AssertionError(f"task failed: {body}")
            items = body["data"]
            if items and all(item["status"] == "success" for item in items):
                return items
            time.sleep(0.3)
        raise TimeoutError(f"task {task_uuid} not done after {timeout} s")


def server_fixture(name: str, **env: str):
    """A module's real server as a fixture, `server = server_fixture("name", LTX_...="...")`: one `serve --demo` on
    the session's tiny weights and a data folder of its own, started for the module's first test that asks for it and
    stopped after its last (the fixture's name is the one it is assigned to)."""

    @pytest.fixture(scope="module")
    def server(tiny_root, tmp_path_factory):
        process = ServerProcess(tmp_path_factory.mktemp(name), tiny_root, **env).start()
        yield process
        process.stop()

    return server


def video_task(**fields) -> dict:
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "ltx-runtime:tiny@1",
        "positivePrompt": "a robot dancing in the rain",
        "width": 128,
        "height": 72,
        "duration": 1,
        "fps": 8,
    }
    task.update(fields)
    return task


def download(url: str, path: Path) -> tuple[Path, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        path.write_bytes(response.read())
        return path, response.headers["Content-Type"]


def prometheus_values(text: str) -> dict[str, float]:
    """A /metrics page as {'name{labels}': value}."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] not in "#"}
