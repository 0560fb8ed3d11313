"""Durability: SIGKILL the server while one task runs and others wait; after a restart each finishes exactly once.
A second server on a busy port or node, or on a task store of another schema version, stops before it changes
anything."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from support.server_harness import ServerProcess, video_task

from server.store import open_store

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


def test_a_second_server_on_a_busy_port_or_the_same_node_leaves_the_running_task_alone(tiny_root, tmp_path, say):
    """Both processes would have the same node id (hostname + data folder): the second must neither requeue the first
    one's running task at start-up nor get as far as the task store before it finds its port taken."""
    say("a second server on a busy port while the first one's task runs (about a minute)")
    data_dir = tmp_path / "data"
    first = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:decoding", LTX_TEST_FAULT_SECONDS="30")
    others = []
    try:
        first.start()
        task = video_task()
        assert first.post([task])[0] == 200
        deadline = time.time() + 60
        while "test fault: pause at decoding" not in first.log():
            assert time.time() < deadline, first.log()[-3000:]
            time.sleep(0.1)

        same_port = ServerProcess(data_dir, tiny_root, port=first.port)
        others.append(same_port)
        assert same_port.launch().wait(60) == 3, same_port.log()
        other_port = ServerProcess(data_dir, tiny_root)
        others.append(other_port)
        assert other_port.launch().wait(60) == 3, other_port.log()
        assert re.search(r"node \S+ is already running \(pid %d holds" % first.process.pid, other_port.log())
        other_folder = ServerProcess(tmp_path / "other", tiny_root, port=first.port)
        others.append(other_folder)
        assert other_folder.launch().wait(60) == 3, other_folder.log()
        assert f"cannot listen on 127.0.0.1 port {first.port}" in other_folder.log()
        assert not (tmp_path / "other" / "tasks.sqlite3").exists()  # it stopped before opening a task store

        details = first.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]["data"][0]
        assert (details["status"], details["attempts"]) == ("running", 1)  # still the first attempt, still paused
        first.wait_for_results(task["taskUUID"], timeout=120)
        details = first.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]["data"][0]
        assert (details["status"], details["attempts"]) == ("succeeded", 1)
        assert "requeued" not in first.log() + same_port.log()
    finally:
        for server in [*others, first]:
            server.stop()


def test_a_task_store_of_another_schema_version_stops_the_server_and_is_left_as_it_was(tiny_root, tmp_path):
    server = ServerProcess(tmp_path / "data", tiny_root)
    server.data_dir.mkdir(parents=True)
    store = open_store(server.store_url)  # as an earlier build left it: version 4
    store._run("UPDATE schema_version SET version = 4")
    try:
        assert server.launch().wait(60) == 3, server.log()
        assert "has schema version 4, and this ltx-runtime's is 1" in server.log(), server.log()
        assert "Delete it" in server.log() and "Traceback" not in server.log()
        assert store.schema_version() == 4
    finally:
        server.stop()
        store.close()
