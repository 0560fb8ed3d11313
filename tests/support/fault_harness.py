"""What the fault-injection tests (tests/e2e/test_faults_*.py) share: a tiny clip, and waiting on a real server's
answers and log (docs/reliability.md)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import probe
from support.server_harness import ServerProcess, video_task

CLIP = {"width": 128, "height": 72, "duration": 1, "fps": 8}


def tiny_task(**fields) -> dict:
    return video_task(**{**CLIP, **fields})


def get_response(server: ServerProcess, task_uuid: str) -> dict:
    return server.post([{"taskType": "getResponse", "taskUUID": task_uuid}])[1]


def wait_for_failure(server: ServerProcess, task_uuid: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = get_response(server, task_uuid)
        if "errors" in body:
            return body["errors"][0]
        time.sleep(0.3)
    raise TimeoutError(f"task {task_uuid} did not fail within {timeout} s")


def wait_for_log(server: ServerProcess, pattern: str, timeout: float = 120) -> re.Match:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.search(pattern, server.log())
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"{pattern!r} not in the server log after {timeout} s:\n{server.log()[-3000:]}")


def ready(server: ServerProcess) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.base + "/health/ready", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def media_files(data_dir: Path) -> list[str]:
    """Every file in the media folder and the workers' scratch folder, hidden (partial) ones included."""
    folders = [data_dir / "media", data_dir / "scratch"]
    return sorted(path.name for folder in folders if folder.is_dir() for path in folder.iterdir())


def details(server: ServerProcess, task_uuid: str) -> dict:
    return server.post([{"taskType": "getTaskDetails", "taskUUID": task_uuid}])[1]["data"][0]


def check_clip(path: Path) -> None:
    clip = probe(path)
    assert (clip.width, clip.height, clip.frames, clip.fps) == (128, 72, 8, 8)


def worker_pids(server: ServerProcess) -> list[int]:
    return [int(pid) for pid in re.findall(r"started \S+/worker\S+ \(pid (\d+)\)", server.log())]
