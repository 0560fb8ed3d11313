"""Clients the end-to-end tests drive real servers with: the RunComfy client written from the seed's curl examples,
and the current Runware SDK (`runware-sdk` 1.8.0) in a subprocess of its own.

runware-sdk's import name is `runware`, as the legacy SDK's in .venv is, so it lives in a folder of its own
(scripts/install.sh --test puts it in .test-clients/; the `runware_sdk` fixture installs it there if it is missing)
and runs through tests/e2e/clients/runware_sdk_run.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.server_harness import API_KEY, ServerProcess

ROOT = Path(__file__).resolve().parents[2]  # the repository
SDK_FOLDER = ROOT / ".test-clients" / "runware-sdk-1.8.0"
SCRIPT = ROOT / "tests" / "e2e" / "clients" / "runware_sdk_run.py"


@pytest.fixture(scope="module")
def runware_sdk() -> Path:
    if not (SDK_FOLDER / "runware" / "client.py").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(SDK_FOLDER), "runware-sdk==1.8.0"],
            check=True,
        )
    return SDK_FOLDER


def run_sdk(sdk: Path, server: ServerProcess, transport: str, task: dict, *extra: str, timeout: float = 300) -> dict:
    env = dict(os.environ, PYTHONPATH=str(sdk))  # the SDK alone: none of the legacy SDK in this venv is visible
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), transport, str(server.port), API_KEY, json.dumps(task), *extra],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(outcome["looked_up"]) <= {"127.0.0.1"}, outcome["looked_up"]  # nothing left the machine
    return outcome


TINY_FAST = "ltx-runtime/tiny/fast"


class RunComfyClient:
    """The seed's four curl calls: submit, status, result, cancel, each with Authorization: Bearer <token>."""

    def __init__(self, base: str, token: str = API_KEY):
        self.base = base
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def submit(self, model: str, body: dict, mode: str = "text-to-video") -> httpx.Response:
        return self.http.post(f"/v1/models/{model}/{mode}", json=body)

    def status(self, request_id: str) -> dict:
        return self.http.get(f"/v1/requests/{request_id}/status").json()

    def result(self, request_id: str) -> dict:
        return self.http.get(f"/v1/requests/{request_id}/result").json()

    def cancel(self, request_id: str) -> httpx.Response:
        return self.http.post(f"/v1/requests/{request_id}/cancel")

    def wait(self, request_id: str, until: set[str], timeout: float = 300) -> tuple[dict, list[str]]:
        """Poll the status until it is one of `until`; returns it and every status seen on the way."""
        seen: list[str] = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.status(request_id)
            seen.append(status["status"])
            if status["status"] in until:
                return status, seen
            time.sleep(0.1)
        raise TimeoutError(f"{request_id} still {seen[-1]} after {timeout} s")
