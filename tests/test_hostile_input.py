"""Hostile and malformed input found by an adversarial run (issue 27), in process: the app through httpx's
ASGITransport, the task service with a real SQLite store, images fetched from a real loopback server. Each case was
a bare HTTP 500 or a task stuck for ever; now each is a contract-shaped error naming the parameter, or a task that
fails with a reason."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import uuid
import zlib

import httpx
import pytest
from loopback import LoopbackServer, RecordingHandler, serving

from server.app import create_app
from server.auth import ApiKeys, key_id
from server.media_store import open_media
from server.netguard import GuardedClient, GuardSettings
from server.runware.service import RunwareService, Session
from server.service import TaskService
from server.settings import Settings
from server.tasks import open_store

KEY = "hostile-input-key"


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(role="api", data_dir=tmp_path, demo=True), ApiKeys([KEY]))


def post(app, tasks, **headers) -> httpx.Response:
    return call(app, "POST", "/v1", json=tasks, headers={"Authorization": f"Bearer {KEY}", **headers})


def video(**fields) -> dict:
    return {
        "taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "ltx-runtime:tiny@1",
        "positivePrompt": "a cat on a sofa", "width": 64, "height": 64, "duration": 1, "fps": 8, **fields,
    }  # fmt: skip


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width x height (its one IDAT row would not fill it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b"")


HUGE_PNG = "data:image/png;base64," + base64.b64encode(png_claiming(20000, 20000)).decode()


def frame(image: str) -> dict:
    return {"inputs": {"frameImages": [image]}}


BAD_TASKS = {
    "data URI without a comma": (video(**frame("data:image/png;base64")), "invalidFrameImages", "inputs.frameImages"),
    "PNG header claiming 20000x20000": (video(**frame(HUGE_PNG)), "invalidFrameImages", "inputs.frameImages"),
    "upload without a comma": ({"taskType": "imageUpload", "image": "data:image/png;base64"}, "invalidImage", "image"),
    "upload claiming 20000x20000": ({"taskType": "imageUpload", "image": HUGE_PNG}, "invalidImage", "image"),
    "listTasks offset 2**63": ({"taskType": "listTasks", "offset": 2**63}, "invalidParameter", "offset"),
    "webhookURL http://[::1": (video(webhookURL="http://[::1"), "invalidWebhookURL", "webhookURL"),
    "webhookURL with a fullwidth #": (video(webhookURL="http://example.com\uff03x/"), "invalidWebhookURL", "webhookURL"),
    "uploadEndpoint http://[::1": (video(uploadEndpoint="http://[::1"), "invalidUploadEndpoint", "uploadEndpoint"),
    "uploadEndpoint with a fullwidth #": (
        video(uploadEndpoint="https://exa\uff03mple.com/v.mp4"), "invalidUploadEndpoint", "uploadEndpoint",
    ),  # fmt: skip
    "frame image URL http://[::1": (video(**frame("http://[::1/a.png")), "invalidFrameImages", "inputs.frameImages"),
    "size 1024x64": (video(width=1024, height=64), "unsupportedDimensions", "width"),
    "size 64x1024": (video(width=64, height=1024), "unsupportedDimensions", "width"),
    "size 832x64": (video(width=832, height=64), "unsupportedDimensions", "width"),
}


@pytest.mark.parametrize("name", BAD_TASKS)
def test_bad_input_gets_a_contract_error_naming_the_parameter(app, name):
    task, code, parameter = BAD_TASKS[name]
    answer = post(app, [task])
    assert answer.status_code == 400, answer.text
    (error,) = answer.json()["errors"]
    assert (error["code"], error["parameter"], error["taskType"]) == (code, parameter, task["taskType"]), error
    assert error.get("taskUUID") == task.get("taskUUID")


def test_the_tiny_sizes_refused_are_the_ones_the_vae_cannot_decode(app):
    """A less elongated size at the same width is taken (the rule is the decoder's tile, not a blanket minimum)."""
    assert post(app, [video(width=1024, height=256)]).status_code == 200
    message = post(app, [video(width=1024, height=64)]).json()["errors"][0]["message"]
    assert "1024x64 cannot be decoded" in message and "strip 32 px" in message


def test_a_task_that_crashes_does_not_hide_the_ack_of_the_one_before(app, monkeypatch):
    """A bug on the second task of a batch: the first was queued, so the answer is 200 with its ack, and the second
    gets a contract-shaped 500 error naming it (it was a bare 500 for the whole batch)."""

    def bug(self, task, session):
        raise RuntimeError("a bug")

    monkeypatch.setattr(RunwareService, "_list_tasks", bug)
    first = video()
    second = {"taskType": "listTasks", "taskUUID": str(uuid.uuid4())}
    answer = post(app, [first, second])
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == [{"taskType": "videoInference", "taskUUID": first["taskUUID"]}]
    (error,) = answer.json()["errors"]
    assert error["code"] == "internalError" and error["taskUUID"] == second["taskUUID"] and error["parameter"]
    status = post(app, [{"taskType": "getTaskDetails", "taskUUID": first["taskUUID"]}]).json()["data"][0]["status"]
    assert status == "queued"


# -- first-frame images fetched after the ack: they fail with a reason instead of staying "preparing" --------------


class _ImageHost(RecordingHandler):
    def respond(self, url) -> None:
        if url.path == "/huge.png":
            body = png_claiming(20000, 20000)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # a redirect that httpx can join but not send
            self.send_response(302)
            self.send_header("Location", "http:\\\\127.0.0.1\\x.png")
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.mark.parametrize(("path", "reason"), [("/huge.png", "claims more than"), ("/redirect", "invalid URL")])
def test_a_fetched_image_that_cannot_be_used_fails_its_task(tmp_path, path, reason):
    settings = Settings(role="api", data_dir=tmp_path, demo=True)
    store = open_store(settings.store_url)
    tasks = TaskService(settings, store, open_media(settings))
    session = Session(key_id=key_id(KEY))

    async def submit_and_prepare(url: str) -> str:
        task = video(**frame(url))
        reply = await RunwareService(tasks, ApiKeys([KEY]), demo=True).handle([task], session)
        assert reply.data, reply.body()
        (record,) = store.take_preparing("node", 60)
        async with GuardedClient(GuardSettings(allow_hosts=("127.0.0.1",))) as client:
            await tasks.prepare(record, client)
        return task["taskUUID"]

    with serving(LoopbackServer(_ImageHost)) as host:
        task_uuid = asyncio.run(submit_and_prepare(host.url(path)))
    record = tasks.get(session.key_id, task_uuid)
    assert record.status == "failed" and reason in record.error_message, (record.status, record.error_message)
    store.close()
