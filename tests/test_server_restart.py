"""Durability: SIGKILL the server while one task runs and others wait; after a restart each finishes exactly once."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from server_harness import ServerProcess, video_task

pytestmark = pytest.mark.slow  # two server starts and three 4 s clips


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_tasks_survive_a_killed_server(tiny_root, tmp_path, say):
    data_dir = tmp_path / "data"
    say("killing a server mid-task, restarting it, and waiting for three 4 s clips (a minute or two on 2 cores)")
    first = ServerProcess(data_dir, tiny_root).start()
    try:
        # Long enough (a few seconds each on 2 CPU cores) that the kill lands mid-generation.
        tasks = [video_task(width=512, height=288, duration=4, fps=25) for _ in range(3)]
        for task in tasks:
            assert first.post([task])[0] == 200
        deadline = time.time() + 60
        while time.time() < deadline:
            item = first.post([{"taskType": "getResponse", "taskUUID": tasks[0]["taskUUID"]}])[1]["data"][0]
            if item["status"] == "processing" and item["progress"] > 0:
                break
            time.sleep(0.05)
        assert item["status"] == "processing" and item["progress"] > 0, item  # running, not finished
        video_uuids = [first.post([{"taskType": "getResponse", "taskUUID": t["taskUUID"]}])[1]["data"][0]["videoUUID"]
                       for t in tasks]
        worker_pids = [int(pid) for pid in re.findall(r"started \S+/worker\S+ \(pid (\d+)\)", first.log())]
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()

    # The orphaned worker notices its parent is gone and exits instead of finishing the task on its own.
    deadline = time.time() + 10
    while any(alive(pid) for pid in worker_pids) and time.time() < deadline:
        time.sleep(0.1)
    assert worker_pids and not any(alive(pid) for pid in worker_pids)

    second = ServerProcess(data_dir, tiny_root, port=first.port).start()
    try:
        for task, video_uuid in zip(tasks, video_uuids):
            (item,) = second.wait_for_results(task["taskUUID"], timeout=240)
            assert item["videoUUID"] == video_uuid  # the same result, not a second one
        media = sorted(path.name for path in (data_dir / "media").iterdir() if not path.name.startswith("."))
        assert media == sorted(f"{video_uuid}.mp4" for video_uuid in video_uuids)
        details = second.post([{"taskType": "getTaskDetails", "taskUUID": tasks[0]["taskUUID"]}])[1]["data"][0]
        assert details["attempts"] == 2  # it ran again after the kill
        assert "requeued 1 task(s)" in second.log()
    finally:
        second.stop()
