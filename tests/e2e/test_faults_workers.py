"""Worker faults against the real server: a worker killed at every stage, one task that kills every worker, a hung
worker and the watchdog (docs/reliability.md). Faults inside a worker come from the test hook
server/workers/faults.py (LTX_TEST_FAULT); everything else is a real process, file or signal."""

from __future__ import annotations

import re
import time

import pytest

from ltx_runtime.progress import STAGES
from support.fault_harness import (
    check_clip, details, get_response, media_files, tiny_task, wait_for_failure, wait_for_log, worker_pids,
)
from support.server_harness import ServerProcess


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


