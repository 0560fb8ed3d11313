"""Resource faults against the real server: a full disk, a data folder full for a while, a killed ffmpeg, a locked
database and corrupt weights (docs/reliability.md). Faults inside a worker come from the test hook
server/workers/faults.py (LTX_TEST_FAULT); everything else is a real process, file or signal."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import tmpfs
from support.processes import children, hold_write_lock
from support.fault_harness import (
    check_clip, details, get_response, media_files, ready, tiny_task, wait_for_failure, wait_for_log, worker_pids,
)
from support.server_harness import ServerProcess


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
