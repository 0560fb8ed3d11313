"""Fault injection against the real server: workers killed at every stage, a hung worker, SIGTERM draining, a full
disk, a killed ffmpeg, a locked database and corrupt weights (docs/reliability.md). Faults inside a worker come from
the test hook server/workers/faults.py (LTX_TEST_FAULT); everything else is a real process, file or signal."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import probe, tmpfs
from ltx_runtime.progress import STAGES
from support.processes import children, hold_write_lock
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


# -- worker faults ------------------------------------------------------------------------------------------------


# Two worker starts each (a minute on 2 busy cores): the encoding stage (ffmpeg running) in the quick layer, all in slow.
@pytest.mark.parametrize("stage", [stage if stage == "encoding" else pytest.param(stage, marks=pytest.mark.slow)
                                   for stage in STAGES])  # fmt: skip
def test_a_worker_killed_at_each_stage_is_replaced_and_its_task_finishes_once(stage, tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT=f"kill:{stage}:1").start()
    try:
        task = tiny_task()
        status, body = server.post([task])
        assert status == 200, body
        video_uuid = get_response(server, task["taskUUID"])["data"][0]["videoUUID"]
        (item,) = server.wait_for_results(task["taskUUID"], timeout=180)
        assert item["videoUUID"] == video_uuid  # the same result, made once
        assert details(server, task["taskUUID"])["attempts"] == 2
        log = server.log()
        assert f"test fault: kill at {stage} (attempt 1)" in log
        assert "exited with -9; requeued 1 task" in log
        assert re.search(rf"task requeued taskUUID={task['taskUUID']} .*attempts=1 counted=True", log)
        assert len(worker_pids(server)) == 2  # the killed worker and its successor
        assert media_files(data_dir) == [f"{video_uuid}.mp4"]  # no partial or orphan file
        check_clip(data_dir / "media" / f"{video_uuid}.mp4")
    finally:
        server.stop()


def test_a_task_that_kills_every_worker_fails_after_max_attempts(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="kill:encoding", LTX_MAX_ATTEMPTS="2").start()
    try:
        task = tiny_task()
        assert server.post([task])[0] == 200
        error = wait_for_failure(server, task["taskUUID"], timeout=180)
        assert error["code"] == "inferenceError"
        assert "the worker stopped while running this task, 2 times" in error["message"]
        assert details(server, task["taskUUID"])["attempts"] == 2
        assert f"task failed taskUUID={task['taskUUID']}" in server.log()
        assert media_files(data_dir) == []
    finally:
        server.stop()


def test_the_watchdog_kills_a_hung_worker_and_requeues_its_task(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    watchdog = 15  # above the longest silence of a healthy tiny generation on 2 busy cores (text encoding: ~5 s)
    hung, following = tiny_task(), tiny_task()
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="hang:stage_1:1", LTX_TEST_FAULT_TASK=hung["taskUUID"],
                           LTX_WATCHDOG_SECONDS=str(watchdog)).start()  # fmt: skip
    try:
        assert server.post([hung])[0] == 200
        wait_for_log(server, "test fault: hang at stage_1")
        hang_started = time.time()
        assert server.post([following])[0] == 200
        # The worker ignores SIGTERM (as one stuck in CUDA would): SIGKILL after the supervisor's 5 s grace.
        wait_for_log(server, rf"task requeued taskUUID={hung['taskUUID']}", timeout=watchdog + 15)
        requeued_after = time.time() - hang_started
        assert "made no progress" in server.log()
        assert requeued_after < watchdog + 5 + 3, requeued_after  # watchdog + SIGKILL grace + a check interval
        for task in (hung, following):
            (item,) = server.wait_for_results(task["taskUUID"], timeout=180)
            check_clip(data_dir / "media" / item["videoURL"].rsplit("/", 1)[1])
        assert details(server, hung["taskUUID"])["attempts"] == 2
        assert details(server, following["taskUUID"])["attempts"] == 1  # served by the restarted worker
        assert len(worker_pids(server)) == 2
        print(f"hung worker's task requeued {requeued_after:.1f} s after its last progress (watchdog {watchdog} s)")
    finally:
        server.stop()


# -- graceful shutdown --------------------------------------------------------------------------------------------


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


# -- resource faults ----------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs mounted where the server keeps its media, another disk than the workers' scratch folder (root
    and mount(2) needed; a skip says so)."""
    with tmpfs(tmp_path / "data" / "media", "512k") as media:
        yield media


def fill_disk(folder: Path) -> Path:
    """Fill the disk under `folder` to its last block; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_full_disk_fails_the_task_cleanly_and_the_next_one_works_once_space_is_back(small_disk, tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    # The pause holds the worker at the start of its encode: the disk fills while the task runs.
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:encoding").start()
    try:
        task = tiny_task()
        assert server.post([task])[0] == 200
        wait_for_log(server, "test fault: pause at encoding")
        filler = fill_disk(small_disk)
        status, body = server.post([tiny_task()])  # refused at once, as the README promises
        assert (status, body["errors"][0]["code"]) == (507, "storageFull"), body
        assert ready(server)[0] == 503 and ready(server)[1]["status"] == "storage full"
        error = wait_for_failure(server, task["taskUUID"])
        assert error["code"] == "storageFull"
        assert "no space left" in error["message"]
        assert media_files(data_dir) == ["filler"]  # nothing partial left, nothing served
        filler.unlink()
        assert ready(server)[0] == 200
        following = tiny_task()
        assert server.post([following])[0] == 200
        (item,) = server.wait_for_results(following["taskUUID"], timeout=120)
        check_clip(small_disk / item["videoURL"].rsplit("/", 1)[1])
    finally:
        server.stop()


@pytest.fixture
def small_data_folder(tmp_path):
    """A 48 MiB tmpfs as the whole data folder: the SQLite file, media, images and scratch (root and mount(2))."""
    with tmpfs(tmp_path / "data", "48m") as data:
        yield data


@pytest.mark.slow
def test_a_data_folder_full_for_6_s_during_a_task_stops_nothing_for_good(small_data_folder, tiny_root, tmp_path):
    server = ServerProcess(small_data_folder, tiny_root, LTX_TEST_FAULT="pause:encoding")
    server.log_path = tmp_path / "server.log"  # not on the disk that fills
    server.start()
    try:
        task = tiny_task()
        assert server.post([task])[0] == 200
        wait_for_log(server, "test fault: pause at encoding")
        (worker,) = worker_pids(server)
        filler = fill_disk(small_data_folder)
        status, body = server.post([tiny_task()])
        assert (status, body["errors"][0]["code"]) == (507, "storageFull"), body
        assert ready(server)[1]["status"] == "storage full"
        time.sleep(6)
        filler.unlink()
        wait_for_log(server, "task store failed")  # the worker met the full SQLite disk, and lived
        deadline = time.time() + 120
        while ready(server)[0] != 200:
            assert time.time() < deadline, ready(server)
            time.sleep(0.5)
        body = get_response(server, task["taskUUID"])  # it ran again (the store error was not the task's), or it failed
        while "errors" not in body and not all(item["status"] == "success" for item in body["data"]):
            assert time.time() < deadline, body
            time.sleep(0.5)
            body = get_response(server, task["taskUUID"])
        assert "errors" not in body or body["errors"][0]["code"] == "storageFull", body
        following = tiny_task()
        assert server.post([following])[0] == 200
        (item,) = server.wait_for_results(following["taskUUID"], timeout=120)
        check_clip(small_data_folder / "media" / item["videoURL"].rsplit("/", 1)[1])
        assert worker_pids(server) == [worker]  # the same worker: it never died
        print(f"first task: {'failed ' + body['errors'][0]['code'] if 'errors' in body else 'succeeded'}, "
              f"attempts {details(server, task['taskUUID'])['attempts']}")
    finally:
        server.stop()


def test_a_killed_ffmpeg_fails_its_task_and_the_worker_serves_the_next(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    # The pause holds the worker mid-encode (every frame sent, ffmpeg waiting for the end of its input).
    server = ServerProcess(data_dir, tiny_root, LTX_TEST_FAULT="pause:encoding").start()
    try:
        task = tiny_task()
        assert server.post([task])[0] == 200
        wait_for_log(server, "test fault: pause at encoding")
        (worker,) = worker_pids(server)
        encoders = [pid for pid, name in children(worker) if name.startswith("ffmpeg")]
        assert len(encoders) == 1, children(worker)
        os.kill(encoders[0], signal.SIGKILL)
        error = wait_for_failure(server, task["taskUUID"])
        assert error["code"] == "inferenceError"
        assert "the video encoder failed: ffmpeg failed (exit -9)" in error["message"]
        following = tiny_task()
        assert server.post([following])[0] == 200
        (item,) = server.wait_for_results(following["taskUUID"], timeout=120)
        check_clip(data_dir / "media" / item["videoURL"].rsplit("/", 1)[1])
        assert worker_pids(server) == [worker]  # the same worker
        assert media_files(data_dir) == [item["videoURL"].rsplit("/", 1)[1]]
    finally:
        server.stop()


def test_a_locked_database_delays_the_api_and_workers_but_loses_nothing(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root).start()
    try:
        first = tiny_task()
        assert server.post([first])[0] == 200
        lock = sqlite3.connect(data_dir / "tasks.sqlite3", isolation_level=None, check_same_thread=False)
        lock.execute("BEGIN EXCLUSIVE")
        held = 3.0
        threading.Timer(held, lock.execute, ("COMMIT",)).start()
        started = time.time()
        second = tiny_task()
        status, body = server.post([second])  # waits for the lock
        waited = time.time() - started
        assert status == 200, body
        assert waited >= held - 0.5, waited
        for task in (first, second):
            (item,) = server.wait_for_results(task["taskUUID"], timeout=120)
            check_clip(data_dir / "media" / item["videoURL"].rsplit("/", 1)[1])
            assert details(server, task["taskUUID"])["attempts"] == 1
        assert " 500 " not in server.log() and "Traceback" not in server.log()
        print(f"a submission waited {waited:.1f} s for a {held:.0f} s database lock")
    finally:
        server.stop()


@pytest.mark.slow
def test_a_database_locked_past_its_busy_timeout_stops_nothing_for_good(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tiny_root, LTX_SQLITE_BUSY_TIMEOUT="1").start()
    try:
        (worker,) = worker_pids(server)
        holder = hold_write_lock(data_dir / "tasks.sqlite3", 8)  # another process, 8x the busy timeout
        time.sleep(4)
        status, body = ready(server)
        assert status == 503 and body["status"] == "failing" and "worker pool" in body["failing"], body
        status, body = server.post([tiny_task()])
        assert (status, body["errors"][0]["code"]) == (503, "serviceUnavailable"), body
        holder.wait()
        deadline = time.time() + 60
        while ready(server)[0] != 200:
            assert time.time() < deadline, ready(server)
            time.sleep(0.5)
        recovered = time.time() - (deadline - 60)
        task = tiny_task()
        assert server.post([task])[0] == 200
        (item,) = server.wait_for_results(task["taskUUID"], timeout=120)
        check_clip(data_dir / "media" / item["videoURL"].rsplit("/", 1)[1])
        assert worker_pids(server) == [worker]  # the worker backed off and retried; it never died
        assert "task store failed" in server.log()
        print(f"an 8 s lock (busy timeout 1 s): readiness 503 failing, submit 503; ready {recovered:.1f} s after it")
    finally:
        server.stop()


def test_corrupt_weights_fail_the_worker_visibly_and_it_restarts_with_back_off(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    weights = shutil.copytree(tiny_root, tmp_path / "tiny")
    transformer = weights / "ltx-2" / "transformer" / "diffusion_pytorch_model.safetensors"
    with open(transformer, "r+b") as file:
        file.truncate(transformer.stat().st_size // 2)
    server = ServerProcess(data_dir, weights).start(until="/health/live")
    try:
        wait_for_log(server, "could not load")
        deadline = time.time() + 30
        while time.time() < deadline:
            status, body = ready(server)
            if body["status"] == "failed":
                break
            time.sleep(0.2)
        assert status == 503 and body["status"] == "failed", body
        (worker,) = body["workers"]
        assert worker["state"] == "failed" and "safetensors" in worker["detail"].lower(), worker
        with urllib.request.urlopen(server.base + "/health/live", timeout=5) as response:
            assert response.status == 200
        status, missing = server.post([{"taskType": "getResponse", "taskUUID": tiny_task()["taskUUID"]}])
        assert status == 404 and missing["errors"][0]["code"] == "taskNotFound"
        observed_from = time.time()
        starts_before = len(worker_pids(server))
        time.sleep(12)
        starts = len(worker_pids(server)) - starts_before
        assert starts <= 3, starts  # back-off 1, 2, 5, 10 s: not one start a second
        print(f"{starts} worker start(s) in {time.time() - observed_from:.0f} s with corrupt weights")
    finally:
        server.stop()
