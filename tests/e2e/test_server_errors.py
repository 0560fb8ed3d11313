"""Bad input through the real server: a contract-shaped error naming the parameter, never a 500, and nothing lost;
body limits, keys and per-key limits on the wire, the JSON log. Every case of the bad-input tables runs in process in
unit/test_validation_errors.py."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request

import pytest

from server.api.runware.service import INVALID_KEY_MESSAGE
from support.bad_input import OTHER_CASES, VIDEO_CASES, cases_named
from support.server_harness import API_KEY, OTHER_KEY, server_fixture, video_task

server = server_fixture("server-errors", LTX_MAX_PENDING_PER_KEY="3", LTX_LOG_FORMAT="json")


# The tables run in process (unit/test_validation_errors.py); these few go through the real server's HTTP path.
WIRE_VIDEO_CASES = cases_named(VIDEO_CASES, "size not offered", "safety unknown key")
WIRE_OTHER_CASES = cases_named(OTHER_CASES, "imageUpload over the pixel limit", "body not an array")


@pytest.mark.parametrize("name, task, code, parameter", WIRE_VIDEO_CASES, ids=[case[0] for case in WIRE_VIDEO_CASES])
def test_bad_video_inference(server, name, task, code, parameter):
    status, body = server.post([task])
    assert status == 400, body
    assert "data" not in body
    (error,) = body["errors"]
    assert (error["code"], error["parameter"]) == (code, parameter), error
    assert error["taskType"] == "videoInference"
    assert error.get("taskUUID") == task["taskUUID"]
    assert error["message"]


@pytest.mark.parametrize(
    "name, tasks, status, code, parameter", WIRE_OTHER_CASES, ids=[case[0] for case in WIRE_OTHER_CASES]
)
def test_bad_other_tasks(server, name, tasks, status, code, parameter):
    got_status, body = server.post(tasks)
    assert got_status == status, body
    (error,) = body["errors"]
    assert error["code"] == code and error.get("parameter") == parameter and error["message"]


def test_malformed_json_body(server):
    status, body = server.post(None, raw=b"[{not json")
    assert status == 400 and body["errors"] == [
        {"code": "invalidRequestBody", "message": "the body is not valid JSON", "parameter": "body"}]


def test_oversized_body_is_refused_before_it_is_read(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", "/v1")
    connection.putheader("Authorization", f"Bearer {API_KEY}")
    connection.putheader("Content-Length", str(21 * 1024 * 1024))
    connection.endheaders()  # the body never follows: the declared size alone is refused
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 413 and body["errors"][0]["code"] == "invalidRequestBody"


def test_no_key_and_a_wrong_key(server):
    """The key is checked before the body is parsed (issue 27), so one error answers the body; it names the first
    task (issue 25: every error carries taskType and taskUUID), or the authentication task that failed."""
    task = video_task()
    status, body = server.post([task], key=None)
    assert status == 401 and body["errors"][0]["code"] == "missingApiKey"
    status, body = server.post([task, video_task()], key="nope")
    assert status == 401
    (header_error,) = body["errors"]
    assert header_error == {"code": "invalidApiKey", "message": INVALID_KEY_MESSAGE, "parameter": "apiKey",
                            "taskType": "videoInference", "taskUUID": task["taskUUID"]}  # fmt: skip
    status, body = server.post([{"taskType": "authentication", "apiKey": "nope"}, video_task()], key=None)
    assert status == 401
    (task_error,) = body["errors"]
    assert task_error == {"code": "invalidApiKey", "message": INVALID_KEY_MESSAGE, "parameter": "apiKey",
                          "taskType": "authentication"}  # the error of the authentication task, with no taskUUID


def test_too_many_unfinished_tasks_per_key(server):
    tasks = [video_task(width=256, height=144, duration=2, fps=25) for _ in range(4)]
    status, body = server.post(tasks, key=OTHER_KEY)
    assert status == 200  # a batch with acks
    assert [item["taskUUID"] for item in body["data"]] == [task["taskUUID"] for task in tasks[:3]]
    (error,) = body["errors"]
    assert (error["code"], error["taskUUID"]) == ("rateLimitExceeded", tasks[3]["taskUUID"])
    status, body = server.post([video_task()], key=OTHER_KEY)
    assert status == 429 and body["errors"][0]["code"] == "rateLimitExceeded"
    # Another key is not held up by this one's queue.
    assert server.post([video_task()])[0] == 200


@pytest.mark.slow
def test_nothing_is_lost_and_the_server_still_works(server):
    """After all of the above, a good task still runs to the end and the server is healthy."""
    task = video_task()
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    assert item["status"] == "success"
    with urllib.request.urlopen(server.base + "/health/ready") as response:
        assert json.loads(response.read())["status"] == "ready"
    assert "Traceback" not in server.log()


def test_json_logs_for_log_shippers(server):
    """LTX_LOG_FORMAT=json (this module's server): every line of the server and its worker is one JSON object."""
    task = video_task()
    server.post([task])
    server.wait_for_results(task["taskUUID"])
    # The worker logs "finished" just after the result becomes visible to getResponse: wait for that line.
    deadline = time.monotonic() + 20
    while True:
        records = [json.loads(line) for line in server.log().splitlines()]
        if time.monotonic() > deadline or any(
                r.get("taskUUID") == task["taskUUID"] and r.get("event") == "finished" for r in records):
            break
        time.sleep(0.1)
    assert all({"time", "level", "process", "logger", "message"} <= record.keys() for record in records)
    assert {record["process"] for record in records} >= {"server"} and any(
        record["process"].split("/")[-1].startswith("worker") for record in records)  # fmt: skip
    events = [record for record in records if record.get("taskUUID") == task["taskUUID"]]
    assert [event["event"] for event in events if event["event"] != "progress"] == [
        "accepted", "started", "result", "finished"]
    finished = events[-1]
    assert (finished["model"], finished["size"], finished["level"]) == ("ltx-runtime:tiny@1", "128x72", "INFO")
    assert finished["seconds"] > 0 and finished["key"] != API_KEY and len(finished["key"]) == 16
