"""Admission control through the server: a clip the workers' memory budget cannot hold is refused at submission,
naming the limit, and the server keeps serving what fits."""

from __future__ import annotations

import json
import urllib.request

import httpx
import pytest

from support.server_harness import API_KEY, server_fixture, video_task

pytestmark = pytest.mark.slow  # a server of its own and several clips: the long layer


server = server_fixture("server-memory", LTX_MEMORY_PROFILE="low", LTX_MEMORY_BUDGET_GIB="24")


def test_workers_report_their_memory_profile_and_budget(server):
    with urllib.request.urlopen(server.base + "/health/ready") as response:
        (worker,) = json.loads(response.read())["workers"]
    assert (worker["memory_profile"], worker["memory_budget"]) == ("low", 24 * 1024**3)


def test_a_clip_over_the_budget_is_refused_at_submission(server):
    task = video_task(model="lightricks:2@1", width=3840, height=2160, duration=10, fps=50)
    status, body = server.post([task])
    assert status == 400 and "data" not in body
    (error,) = body["errors"]
    assert (error["code"], error["parameter"], error["taskUUID"]) == ("unsupportedDimensions", "width", task["taskUUID"])
    assert "3840x2160" in error["message"] and "limit of 24 GiB" in error["message"]
    # Nothing was queued under that taskUUID.
    status, body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert body["errors"][0]["code"] == "taskNotFound"


def test_a_clip_within_the_budget_runs(server):
    task = video_task()
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    assert item["status"] == "success"


def test_runcomfy_answers_for_memory_the_same_way(server):
    response = httpx.post(
        f"{server.base}/v1/models/ltx/ltx-2/fast/text-to-video", headers={"Authorization": f"Bearer {API_KEY}"},
        json={"prompt": "a storm at sea", "resolution": "2160p", "duration": 10, "fps": 50},
    )  # fmt: skip
    error = response.json()["error"]
    assert response.status_code == 400 and (error["code"], error["parameter"]) == (400003, "resolution")
    assert "3840x2160" in error["message"] and "limit of 24 GiB" in error["message"]
