"""Hostile and malformed input found by an adversarial run (issue 27), in process: the app through httpx's
ASGITransport, the task service with a real SQLite store, images fetched from a real loopback server. Each case was
a bare HTTP 500 or a task stuck for ever; now each is a contract-shaped error naming the parameter, or a task that
fails with a reason."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from support.fuzz_harness import HUGE_PNG, png_claiming
from support.in_process import api_app, call, submit_and_prepare
from support.loopback import LoopbackServer, RecordingHandler, serving

from server.app import create_app
from server.api.auth import ApiKeys, key_id
from server.api.limits import KeyCheckLimiter
from server.media.store import open_media
from server.api.runware.service import RunwareService, Session
from server.tasks.service import TaskService
from server.settings import Settings
from server.store import open_store

KEY = "hostile-input-key"


@pytest.fixture
def app(tmp_path):
    return api_app(tmp_path, KEY)


def post(app, tasks, **headers) -> httpx.Response:
    return call(app, "POST", "/v1", json=tasks, headers={"Authorization": f"Bearer {KEY}", **headers})


def video(**fields) -> dict:
    return {
        "taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "ltx-runtime:tiny@1",
        "positivePrompt": "a cat on a sofa", "width": 64, "height": 64, "duration": 1, "fps": 8, **fields,
    }  # fmt: skip


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

    with serving(LoopbackServer(_ImageHost)) as host:
        task = video(**frame(host.url(path)))
        task_uuid = submit_and_prepare(RunwareService(tasks, ApiKeys([KEY]), demo=True), store, tasks, session, task)
    record = tasks.get(session.key_id, task_uuid)
    assert record.status == "failed" and reason in record.error_message, (record.status, record.error_message)
    store.close()


# -- the key first, and the requests a browser could send from another site ----------------------------------------


def test_a_wrong_header_key_names_the_first_task_and_a_bad_authentication_task_stops_the_body(app):
    """Issue 25 item 5: a wrong key on a videoInference answered taskType "authentication" without a taskUUID."""
    task = video()
    answer = call(app, "POST", "/v1", json=[task], headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
    (error,) = answer.json()["errors"]
    assert (error["code"], error["taskType"], error["taskUUID"]) == ("invalidApiKey", "videoInference", task["taskUUID"])
    keyless = call(app, "POST", "/v1", json=[{"taskType": "authentication", "apiKey": "wrong"}, task])
    assert keyless.status_code == 401
    (error,) = keyless.json()["errors"]
    assert (error["code"], error["taskType"], "taskUUID" in error) == ("invalidApiKey", "authentication", False)
    good = call(app, "POST", "/v1", json=[{"taskType": "authentication", "apiKey": KEY}, {"taskType": "ping"}])
    assert good.json() == {"data": [{"taskType": "authentication"}, {"taskType": "ping", "pong": True}]}


def test_a_body_of_too_many_values_is_refused_unparsed_even_with_a_key(app):
    answer = call(app, "POST", "/v1", content=b"[" + b",".join([b"{}"] * 300_000) + b"]",
                  headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["code"] == "invalidRequestBody" and "more than 200000 JSON values" in error["message"]


def test_the_websocket_checks_the_key_of_a_frame_before_parsing_the_rest(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client, client.websocket_connect("/v1") as socket:
        socket.send_text(json.dumps([{"taskType": "ping", "taskUUID": "p1"}, {"taskType": "ping"}]))
        (error,) = socket.receive_json()["errors"]
        assert (error["code"], error["taskType"], error["taskUUID"]) == ("missingApiKey", "ping", "p1")
        socket.send_text(json.dumps([{"taskType": "authentication", "apiKey": KEY}, {"taskType": "ping"}]))
        assert "connectionSessionUUID" in socket.receive_json()["data"][0]
        assert socket.receive_json() == {"data": [{"taskType": "ping", "pong": True}]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_the_json_endpoints_refuse_the_content_types_a_cross_site_form_can_send(app, content_type):
    """Issue 27 item 9: a page on another site can POST these without asking the server first (a CORS simple
    request); a key in an authentication task would then run tasks. JSON types, and no type at all, still work."""
    body = json.dumps([{"taskType": "authentication", "apiKey": KEY}, {"taskType": "ping"}])
    refused = call(app, "POST", "/v1", content=body, headers={"Content-Type": content_type})
    assert refused.status_code == 415
    (error,) = refused.json()["errors"]
    assert (error["code"], error["parameter"]) == ("unsupportedContentType", "Content-Type")
    runcomfy = call(app, "POST", "/v1/models/ltx-runtime/tiny/fast/text-to-video", content=b'{"prompt": "a cat"}',
                    headers={"Content-Type": content_type, "Authorization": f"Bearer {KEY}"})  # fmt: skip
    assert runcomfy.status_code == 415 and runcomfy.json()["error"]["code"] == 415001
    for accepted in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json", None):
        headers = {"Content-Type": accepted} if accepted else {}
        assert call(app, "POST", "/v1", content=body, headers=headers).status_code == 200, accepted


def test_the_playground_page_cannot_be_framed(app):
    page = call(app, "GET", "/playground")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_failed_key_checks_are_throttled_per_client_address(tmp_path):
    """Issue 27 item 9: ~6,800 guesses a second went unthrottled. After `burst` failures an address gets 429 for
    every key, the right one too (a success would tell the guesser), on both APIs; another address is not held up."""
    keys = ApiKeys([KEY], throttle=KeyCheckLimiter(per_second=0.5, burst=3))
    app = create_app(Settings(role="api", data_dir=tmp_path, demo=True), keys)
    guesses = [call(app, "POST", "/v1", json=[{"taskType": "ping"}], headers={"Authorization": f"Bearer guess-{n}"})
               for n in range(3)]  # fmt: skip
    assert [guess.status_code for guess in guesses] == [401, 401, 401]
    for headers, body in (({"Authorization": f"Bearer {KEY}"}, [{"taskType": "ping"}]),
                          ({}, [{"taskType": "authentication", "apiKey": KEY}])):  # fmt: skip
        throttled = call(app, "POST", "/v1", json=body, headers=headers)
        assert throttled.status_code == 429
        (error,) = throttled.json()["errors"]
        assert (error["code"], error["parameter"]) == ("rateLimitExceeded", "apiKey") and "retry in" in error["message"]
    runcomfy = call(app, "GET", "/v1/requests", headers={"Authorization": f"Bearer {KEY}"})
    assert runcomfy.status_code == 429 and runcomfy.json()["error"]["code"] == 429001
    assert keys.identify(KEY, "192.0.2.7") == key_id(KEY)  # another client address
    time.sleep(2.1)  # one failure's worth of tokens back
    assert post(app, [{"taskType": "ping"}]).status_code == 200
