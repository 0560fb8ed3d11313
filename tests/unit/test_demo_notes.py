"""Demo mode says up front when a clip takes minutes on the CPU: in the ack, getResponse, RunComfy's status and the log
(in process: an API node's app through httpx's ASGITransport; nothing runs, the tasks stay queued)."""

from __future__ import annotations

import logging
import uuid

import pytest

from ltx_runtime.progress import cpu_stage_seconds
from support.in_process import api_app, call

KEY = "demo-notes-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def runware(app, task: dict) -> dict:
    return call(app, "POST", "/v1", json=[task], headers=AUTH).json()["data"][0]


def video_task(**fields) -> dict:
    return {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "positivePrompt": "a sunset", **fields}


@pytest.fixture
def demo_app(tmp_path):
    return api_app(tmp_path, KEY)


def test_a_hosted_size_in_demo_mode_is_announced_as_minutes_and_a_small_one_is_not(demo_app, caplog):
    caplog.set_level(logging.INFO)
    slow = video_task(model="lightricks:2@1")  # 1920x1080, 6 s, 25 fps by default
    ack = runware(demo_app, slow)
    minutes = sum(cpu_stage_seconds(1920, 1080, 150).values()) / 60
    assert ack["warning"].startswith("demo mode: tiny random weights on a CPU, where a 1920x1080 clip of 6 s at 25 fps")
    assert f"about {minutes:.0f} min on 2 cores" in ack["warning"] and minutes >= 2
    (item,) = runware(demo_app, {"taskType": "getResponse", "taskUUID": slow["taskUUID"]}),
    assert (item["status"], item["warning"]) == ("processing", ack["warning"])
    logged = [getattr(record, "fields", {}) for record in caplog.records if record.levelno == logging.WARNING]
    assert {"event": "slow_demo", "taskUUID": slow["taskUUID"], "note": ack["warning"]} in logged

    quick = video_task(model="ltx-runtime:tiny@1", width=256, height=144, duration=2, fps=25)
    assert "warning" not in runware(demo_app, quick)
    (item,) = runware(demo_app, {"taskType": "getResponse", "taskUUID": quick["taskUUID"]}),
    assert "warning" not in item


def test_runcomfy_says_it_too(demo_app):
    submitted = call(demo_app, "POST", "/v1/models/ltx/ltx-2/fast/text-to-video", json={"prompt": "a sunset"},
                     headers=AUTH).json()
    assert "takes minutes" in submitted["warning"]
    status = call(demo_app, "GET", f"/v1/requests/{submitted['request_id']}/status", headers=AUTH).json()
    assert status["status"] == "in_queue" and status["warning"] == submitted["warning"]


def test_no_note_off_demo_mode(tmp_path):
    app = api_app(tmp_path, KEY, demo=False)
    assert "warning" not in runware(app, video_task(model="lightricks:2@1"))
