"""The bad-input tables (support/bad_input.py), every case sent to the app in process (an API node in demo mode, as
the test servers run, through httpx's ASGITransport): the HTTP status and the contract's error naming the parameter.
A few of the same cases go through a real server in e2e/test_server_errors.py and e2e/test_server_runcomfy.py."""

from __future__ import annotations

import pytest

from support.bad_input import BAD_BODIES, OTHER_CASES, VIDEO_CASES, runcomfy_body
from support.in_process import api_app, call

KEY = "bad-input-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return api_app(tmp_path_factory.mktemp("bad-input"), KEY)


def runware(app, tasks) -> tuple[int, dict]:
    response = call(app, "POST", "/v1", json=tasks, headers=AUTH)
    return response.status_code, response.json()


@pytest.mark.parametrize("name, task, code, parameter", VIDEO_CASES, ids=[case[0] for case in VIDEO_CASES])
def test_bad_video_inference(app, name, task, code, parameter):
    status, body = runware(app, [task])
    assert status == 400, body
    assert "data" not in body
    (error,) = body["errors"]
    assert (error["code"], error["parameter"]) == (code, parameter), error
    assert error["taskType"] == "videoInference"
    assert error.get("taskUUID") == (task["taskUUID"] if isinstance(task.get("taskUUID"), str) else None)
    assert error["message"]


@pytest.mark.parametrize("name, tasks, status, code, parameter", OTHER_CASES, ids=[case[0] for case in OTHER_CASES])
def test_bad_other_tasks(app, name, tasks, status, code, parameter):
    got_status, body = runware(app, tasks)
    assert got_status == status, body
    (error,) = body["errors"]
    assert error["code"] == code and error.get("parameter") == parameter and error["message"]


def test_malformed_json_body(app):
    response = call(app, "POST", "/v1", content=b"[{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["errors"] == [
        {"code": "invalidRequestBody", "message": "the body is not valid JSON", "parameter": "body"}]


@pytest.mark.parametrize("name, fields, parameter", BAD_BODIES, ids=[case[0] for case in BAD_BODIES])
def test_bad_runcomfy_bodies_name_the_parameter(app, name, fields, parameter):
    response = call(app, "POST", "/v1/models/ltx/ltx-2/fast/text-to-video", json=runcomfy_body(fields), headers=AUTH)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["name"], error["parameter"]) == (400003, "InvalidParameter", parameter)
    assert error["message"]
