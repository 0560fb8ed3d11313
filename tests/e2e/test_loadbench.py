"""The API under load: the load benchmark runs end to end (tiny size), and a store that waits does not stall the API."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from server.ops.loadbench import latency_summary, parse_options
from support.server_harness import ServerProcess, video_task

ROOT = Path(__file__).resolve().parents[2]


def test_latency_summary_is_nearest_rank_in_milliseconds():
    seconds = [index / 1000 for index in range(1, 101)]  # 1 ms .. 100 ms
    assert latency_summary(seconds) == {"count": 100, "p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert latency_summary([0.25]) == {"count": 1, "p50_ms": 250.0, "p99_ms": 250.0, "max_ms": 250.0}


def test_options_refuse_nonsense(capsys):
    with pytest.raises(SystemExit):
        parse_options(["--pollers", "0"])
    assert "--pollers must be 1 or more" in capsys.readouterr().err
    options, json_path = parse_options(["--clients", "3", "--database-url", "sqlite:////tmp/x.sqlite3", "--json", "o.json"])
    assert (options.clients, options.tasks, options.pollers, options.database_url) == (3, 10, 200, "sqlite:////tmp/x.sqlite3")
    assert json_path == Path("o.json")


def test_the_benchmark_runs_end_to_end_at_a_tiny_size(tiny_root, tmp_path):
    out = tmp_path / "load.json"
    completed = subprocess.run(
        [sys.executable, "-m", "server.ops.loadbench", "--clients", "5", "--tasks", "2", "--pollers", "10", "--seconds",
         "2", "--json", str(out)],
        env={**os.environ, "LTX_TINY_DIR": str(tiny_root), "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    submit, poll = result["submit"], result["poll"]
    assert result["server"]["started"] is True and result["server"]["url"].startswith("http://127.0.0.1:")
    assert (submit["clients"], submit["tasks_per_client"], submit["sent"], submit["acked"], submit["errors"]) == (5, 2, 10, 10, 0)
    assert (poll["pollers"], poll["asked_rps"], poll["errors"]) == (10, 20.0, 0)
    assert 0 < poll["served"] <= 10 * 5  # 2 s at one poll per 0.5 s: at most 5 polls per poller (a late poll moves on)
    assert result["lost"] == 0
    for phase in (submit, poll):
        latency = phase["latency"]
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert phase["server_cpu_ms_per_request"] > 0
        assert phase["served_rps"] > 0
    assert len(result["machine_before"]["load_average"]) == 3 and result["machine_before"]["cpus"] >= 1
    assert "10/10 acked" in completed.stdout and "lost: 0 of 10" in completed.stdout


def _timed_get(url: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        return time.perf_counter() - started, response.status, response.read()


def test_a_store_waiting_for_its_write_lock_does_not_stall_other_requests(tiny_root, tmp_path):
    """The test process holds SQLite's write lock, so a submission waits in the store (its busy timeout is 30 s).
    Meanwhile the liveness probe and a getResponse (a read, which SQLite's WAL mode lets through) answer at once: the
    store waits in a thread, not on the event loop every client shares."""
    server = ServerProcess(tmp_path / "data", tiny_root).start()
    try:
        first = video_task()
        assert server.post([first])[0] == 200
        lock = sqlite3.connect(server.data_dir / "tasks.sqlite3", isolation_level=None)
        (worker_pid,) = lock.execute("SELECT pid FROM workers WHERE state = 'ready'").fetchone()
        # The CPU worker yields the cores to the API process: 10 steps nicer than the server.
        assert os.getpriority(os.PRIO_PROCESS, worker_pid) == os.getpriority(os.PRIO_PROCESS, server.process.pid) + 10
        lock.execute("BEGIN IMMEDIATE")  # the write lock, held until the ROLLBACK below
        try:
            blocked = video_task()
            replies: list = []
            submitting = threading.Thread(target=lambda: replies.append(server.post([blocked])))
            submitting.start()
            time.sleep(2.0)  # the submission is now waiting for the lock
            assert submitting.is_alive(), f"the submission did not wait for the write lock: {replies}"
            seconds, status, body = _timed_get(server.base + "/health/live")
            assert status == 200 and json.loads(body) == {"status": "live"}
            assert seconds < 2.0, f"/health/live took {seconds:.1f} s while the store waited"
            started = time.perf_counter()
            status, reply = server.post([{"taskType": "getResponse", "taskUUID": first["taskUUID"]}])
            assert status == 200 and reply["data"][0]["taskUUID"] == first["taskUUID"]
            assert time.perf_counter() - started < 2.0
            assert submitting.is_alive()  # still waiting: the answers above did not come from a free store
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        submitting.join(30)
        assert replies and replies[0][0] == 200, replies
        assert replies[0][1]["data"][0]["taskUUID"] == blocked["taskUUID"]
    finally:
        server.stop()
