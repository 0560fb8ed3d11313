"""Graceful shutdown of the real server: SIGTERM drains, the grace period's end requeues, a second SIGTERM stops at
once, Ctrl-C requeues (docs/reliability.md). Faults inside a worker come from the test hook server/workers/faults.py
(LTX_TEST_FAULT); everything else is a real process, file or signal."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time

import pytest

from support.fault_harness import check_clip, details, get_response, media_files, ready, tiny_task, wait_for_log
from support.server_harness import ServerProcess


def test_sigterm_drains_lets_the_running_task_finish_and_exits_0(tiny_root, tmp_path, receiver):
    data_dir = tmp_path / "data"
    # The pause holds the task in its decode for 5 s, so that SIGTERM lands while it runs.
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:decoding",
                           LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1").start()  # fmt: skip
    task = tiny_task(webhookURL=receiver.url("/drained"))
    assert server.post([task])[0] == 200
    wait_for_log(server, "test fault: pause at decoding")
    server.process.send_signal(signal.SIGTERM)
    status, body = ready(server)  # at once, before the task finishes
    assert (status, body["status"]) == (503, "draining")
    status, refused = server.post([tiny_task()])
    assert status == 503
    assert refused["errors"][0]["code"] == "serviceUnavailable"
    assert "shutting down" in refused["errors"][0]["message"]
    assert server.process.wait(60) == 0
    log = server.log()
    assert f"task finished taskUUID={task['taskUUID']}" in log
    store = sqlite3.connect(data_dir / "tasks.sqlite3")
    assert store.execute("SELECT status, attempts FROM tasks").fetchall() == [("succeeded", 1)]
    # The finished task's webhook went out before the process exited.
    assert store.execute("SELECT state FROM deliveries").fetchall() == [("delivered",)]
    (hook,) = [request for request in receiver.requests if request["path"] == "/drained"]
    assert json.loads(hook["body"])["taskUUID"] == task["taskUUID"]


def test_at_the_end_of_the_grace_period_the_running_task_is_requeued_without_an_attempt(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:decoding", LTX_SHUTDOWN_GRACE_SECONDS="1").start()
    task = tiny_task()
    assert server.post([task])[0] == 200
    wait_for_log(server, "test fault: pause at decoding")
    stopping = time.time()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    assert time.time() - stopping < 15
    assert "the grace period is over" in server.log()
    store = sqlite3.connect(data_dir / "tasks.sqlite3")
    assert store.execute("SELECT status, attempts FROM tasks").fetchall() == [("queued", 0)]
    assert media_files(data_dir) == []

    again = ServerProcess(data_dir, tiny_root, port=server.port).start()
    try:
        (item,) = again.wait_for_results(task["taskUUID"], timeout=120)
        assert details(again, task["taskUUID"])["attempts"] == 1
        check_clip(data_dir / "media" / item["videoURL"].rsplit("/", 1)[1])
    finally:
        again.stop()


def test_a_second_sigterm_stops_at_once(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:decoding").start()
    task = tiny_task()
    assert server.post([task])[0] == 200
    wait_for_log(server, "test fault: pause at decoding")
    stopping = time.time()
    server.process.send_signal(signal.SIGTERM)
    wait_for_log(server, "draining: 1 worker")
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    stopped_after = time.time() - stopping
    assert "second SIGTERM" in server.log()
    store = sqlite3.connect(data_dir / "tasks.sqlite3")
    assert store.execute("SELECT status, attempts FROM tasks").fetchall() == [("queued", 0)]  # it did not finish
    assert stopped_after < 20, stopped_after  # the task was stopped within its 5 s pause; the rest is process teardown
    print(f"two SIGTERMs: the server exited {stopped_after:.1f} s after the first")
    assert media_files(data_dir) == []


@pytest.mark.slow
def test_ctrl_c_requeues_the_running_task_which_restarts_from_0(tiny_root, tmp_path):
    """Ctrl-C does not drain: the running task goes back to the queue uncounted and starts over, and getResponse says
    so (0 %, no stage) rather than showing where the stopped attempt was."""
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:decoding").start()
    task = tiny_task()
    assert server.post([task])[0] == 200
    wait_for_log(server, "test fault: pause at decoding")
    stopping = time.time()
    os.killpg(server.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    assert server.process.wait(30) == 0
    print(f"Ctrl-C mid-task: the server exited {time.time() - stopping:.1f} s later")
    assert re.search(r"Ctrl-C: stopping without draining: 1 running task\(s\) go back to the queue", server.log())
    store = sqlite3.connect(data_dir / "tasks.sqlite3")
    assert store.execute("SELECT status, attempts FROM tasks").fetchall() == [("queued", 0)]

    again = ServerProcess(data_dir, tiny_root, port=server.port).start(until="/health/live")
    try:
        (item,) = get_response(again, task["taskUUID"])["data"]
        assert (item["status"], item["progress"]) == ("processing", 0)  # not the stopped attempt's decoding share
        assert details(again, task["taskUUID"])["results"][0]["stage"] in (None, "text_encoding")
        again.wait_for_results(task["taskUUID"], timeout=120)
        assert details(again, task["taskUUID"])["attempts"] == 1
    finally:
        again.stop()


