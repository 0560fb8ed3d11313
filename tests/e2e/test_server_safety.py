"""Content safety through the Runware API of a real server, with the tiny classifier forced to pass or to flag.

`LTX_SAFETY_ADJUSTMENT=3` makes the tiny classifier flag every frame; the stock 0.0 flags none (ltx_runtime/safety.py).
"""

from __future__ import annotations

import asyncio
import base64
import io
import time

import pytest
from PIL import Image

from conftest import probe
from server.media.store import open_media
from server.api.runware.service import RunwareService, Session
from server.tasks.service import TaskService
from server.settings import Settings
from server.store import open_store
from support.server_harness import ServerProcess, download, server_fixture, video_task
from support.clients import TINY_FAST, RunComfyClient

FLAG_EVERY_FRAME = "3"


def image_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 90), (200, 120, 40)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait_for_failure(server: ServerProcess, task_uuid: str, timeout: float = 300) -> tuple[int, dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body = server.post([{"taskType": "getResponse", "taskUUID": task_uuid}])
        if "errors" in body:
            return status, body["errors"][0]
        assert all(item["status"] == "processing" for item in body["data"]), body
        time.sleep(0.3)
    raise TimeoutError(f"task {task_uuid} did not fail within {timeout} s")


def start(tmp_path_factory, tiny_root, name: str, **env: str) -> ServerProcess:
    return ServerProcess(tmp_path_factory.mktemp(name), tiny_root, LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1", **env).start()


passing = server_fixture("safety-pass", LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1")
flagging = server_fixture("safety-flag", LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1", LTX_SAFETY_ADJUSTMENT=FLAG_EVERY_FRAME)


@pytest.mark.parametrize("safety", [{"checkContent": True}, {"checkContent": True, "mode": "full"}, {"mode": "full"}])
def test_a_checked_clip_that_passes_is_served_with_nsfw_content_false(passing, tmp_path, safety):
    task = video_task(safety=safety, width=160, height=96, duration=2, fps=8)
    assert passing.post([task])[0] == 200
    (item,) = passing.wait_for_results(task["taskUUID"])
    assert item["NSFWContent"] is False
    info = probe(download(item["videoURL"], tmp_path / "checked.mp4")[0])
    assert (info.width, info.height, info.frames) == (160, 96, 16)  # the check passes every frame on to the encoder
    mode = "full" if safety.get("mode") == "full" else "fast"
    assert f"content check ({mode}): {16 if mode == 'full' else 3} frames" in passing.log()


def test_an_unchecked_clip_carries_no_nsfw_verdict(flagging):
    task = video_task()
    assert flagging.post([task])[0] == 200
    (item,) = flagging.wait_for_results(task["taskUUID"])  # the flagging classifier never ran
    assert "NSFWContent" not in item and item["status"] == "success"


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_a_flagged_clip_is_not_served_uploaded_or_sent(flagging, receiver, mode):
    task = video_task(safety={"checkContent": True, "mode": mode}, webhookURL=receiver.url(f"/hook-{mode}"),
                      uploadEndpoint=receiver.url(f"/upload-{mode}"))  # fmt: skip
    media = flagging.data_dir / "media"
    files_before = set(media.glob("*"))
    assert flagging.post([task])[0] == 200
    status, error = wait_for_failure(flagging, task["taskUUID"])
    assert status == 400 and error["code"] == "nsfwContentDetected" and error["taskUUID"] == task["taskUUID"]
    assert f"({mode} mode) flagged frame 0 of 8" in error["message"]
    assert set(media.glob("*")) == files_before  # not even a partial file
    details = flagging.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]["data"][0]
    assert details["status"] == "failed" and details["deliveries"] == []
    time.sleep(1)  # the delivery loop runs every 0.25 s: it would have sent by now
    assert not [r for r in receiver.requests if r["path"].endswith(mode)]


def test_check_inputs_refuses_a_flagged_image_before_generating(flagging):
    # The output is to be checked too: the refusal names the image, so the image was checked before any frame.
    task = video_task(safety={"checkInputs": True, "checkContent": True}, width=160, height=96,
                      inputs={"frameImages": [image_data_uri()]})  # fmt: skip
    assert flagging.post([task])[0] == 200
    status, error = wait_for_failure(flagging, task["taskUUID"])
    assert error["code"] == "nsfwContentDetected" and error["message"] == (
        "the content safety check flagged the frame image for frame 0 (inputs.frameImages); nothing was generated"
    )


def test_check_inputs_passes_clean_images_on_to_generation(passing, tmp_path):
    frames = [image_data_uri(), {"image": image_data_uri(), "frame": "last"}]  # each keyframe is checked
    task = video_task(safety={"checkInputs": True}, width=160, height=96, inputs={"frameImages": frames})
    assert passing.post([task])[0] == 200
    (item,) = passing.wait_for_results(task["taskUUID"])
    assert "NSFWContent" not in item  # the image was checked; the output was not asked to be
    assert probe(download(item["videoURL"], tmp_path / "image.mp4")[0]).frames == 8


def test_a_required_mode_checks_tasks_that_ask_for_nothing(tiny_root, tmp_path_factory):
    server = start(tmp_path_factory, tiny_root, "safety-required", LTX_REQUIRE_SAFETY="fast",
                   LTX_SAFETY_ADJUSTMENT=FLAG_EVERY_FRAME)  # fmt: skip
    try:
        task = video_task()
        assert server.post([task])[0] == 200
        status, error = wait_for_failure(server, task["taskUUID"])
        assert error["code"] == "nsfwContentDetected" and "(fast mode)" in error["message"]
        # The input image is checked too, before generation.
        image_task = video_task(width=160, height=96, inputs={"frameImages": [image_data_uri()]})
        assert server.post([image_task])[0] == 200
        assert "frame image for frame 0" in wait_for_failure(server, image_task["taskUUID"])[1]["message"]
        # RunComfy's body has no safety fields: the server's requirement checks its requests all the same.
        runcomfy = RunComfyClient(server.base)
        submitted = runcomfy.submit(TINY_FAST, {"prompt": "a red ball", "duration": 6, "resolution": "128x72"})
        assert submitted.status_code == 200, submitted.text
        request_id = submitted.json()["request_id"]
        status, _ = runcomfy.wait(request_id, {"completed", "failed"})
        assert status["status"] == "failed" and status["error"]["code"] == 422001, status
        assert status["error"]["name"] == "ContentFlagged" and "(fast mode)" in status["error"]["message"]
        assert "output" not in runcomfy.result(request_id)
    finally:
        server.stop()


def test_without_classifier_weights_a_task_asking_for_a_check_is_refused_at_submission(tiny_root, tmp_path_factory):
    missing = tmp_path_factory.mktemp("no-classifier") / "safety-checker"
    server = start(tmp_path_factory, tiny_root, "safety-missing", LTX_SAFETY_WEIGHTS=str(missing))
    try:
        for safety in ({"checkContent": True}, {"mode": "full"}, {"checkInputs": True}):
            task = video_task(safety=safety)
            status, body = server.post([task])
            assert status == 503 and "data" not in body
            (error,) = body["errors"]
            expected = ("modelUnavailable", "safety", task["taskUUID"])
            assert (error["code"], error["parameter"], error["taskUUID"]) == expected
            assert "content classifier is not installed" in error["message"] and str(missing) not in error["message"]
            details = server.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]
            assert details["errors"][0]["code"] == "taskNotFound"  # never stored, never run
        unchecked = video_task()
        assert server.post([unchecked])[0] == 200  # a task that asks for no check still runs
        assert server.wait_for_results(unchecked["taskUUID"])[0]["status"] == "success"
    finally:
        server.stop()


def test_required_checks_without_the_classifier_refuse_every_task(tmp_path):
    """In-process: the same admission check, with LTX_REQUIRE_SAFETY set and no classifier installed."""
    settings = Settings(data_dir=tmp_path, demo=True, require_safety="fast", safety_weights=tmp_path / "absent")
    store = open_store(settings.store_url)
    service = RunwareService(TaskService(settings, store, open_media(settings)), keys=None, demo=True)
    task = video_task()  # asks for no check
    reply = asyncio.run(service.handle([task], Session(key_id="key")))
    (error,) = reply.errors
    assert (error.code, error.status, error.parameter) == ("modelUnavailable", 503, "safety")
    assert error.message.startswith("this server requires a content check")
    assert store.get("key", task["taskUUID"]) is None
