"""Runware WebSocket session replay (connectionSessionUUID), cancelTask, and an empty task array, on the real server."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from websockets.sync.client import connect

from support.server_harness import API_KEY, ServerProcess, server_fixture, video_task


server = server_fixture("server-sessions")


class Socket:
    """A raw Runware WebSocket connection: one JSON frame out, one JSON frame in."""

    def __init__(self, server: ServerProcess):
        self.connection = connect(f"ws://127.0.0.1:{server.port}/v1")

    def send(self, *tasks: dict) -> None:
        self.connection.send(json.dumps(list(tasks)))

    def receive(self) -> dict:
        return json.loads(self.connection.recv(timeout=20))

    def authenticate(self, session: str | None = None) -> str:
        self.send({"taskType": "authentication", "apiKey": API_KEY, **({"connectionSessionUUID": session} if session else {})})
        (item,) = self.receive()["data"]
        return item["connectionSessionUUID"]

    def next_is_pong(self) -> bool:
        """Nothing else was waiting: the next frame after a ping is its pong."""
        self.send({"taskType": "ping", "ping": True})
        return self.receive() == {"data": [{"taskType": "ping", "pong": True}]}

    def close(self) -> None:
        self.connection.close()


def wait_until_finished(server: ServerProcess, task_uuid: str, timeout: float = 120) -> dict:
    """Poll over REST (which is no session, so it does not count as reporting to one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = server.post([{"taskType": "getResponse", "taskUUID": task_uuid}])[1]
        if "errors" in body or all(item["status"] == "success" for item in body["data"]):
            return body
        time.sleep(0.2)
    raise TimeoutError(task_uuid)


def submit_and_leave(server: ServerProcess, *tasks: dict) -> str:
    """Submit over a WebSocket session, then drop the connection; returns the session's UUID."""
    socket = Socket(server)
    session = socket.authenticate()
    for task in tasks:
        socket.send(task)
        assert socket.receive() == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
    socket.close()
    return session


def test_results_finished_while_away_are_replayed_once_on_resume(server):
    done, cancelled = video_task(), video_task(width=512, height=288, duration=4, fps=25)
    session = submit_and_leave(server, done, cancelled)
    assert server.post([{"taskType": "cancelTask", "taskUUID": cancelled["taskUUID"]}])[0] == 200
    finished = wait_until_finished(server, done["taskUUID"])["data"]

    socket = Socket(server)
    assert socket.authenticate(session) == session
    assert socket.receive() == {"data": finished}  # the success, as getResponse reports it
    (error,) = socket.receive()["errors"]
    assert (error["code"], error["taskUUID"], error["taskType"]) == ("taskCancelled", cancelled["taskUUID"], "videoInference")
    assert socket.next_is_pong()
    socket.close()

    again = Socket(server)  # each result is sent once
    again.authenticate(session)
    assert again.next_is_pong()
    again.close()


def test_a_result_read_on_the_connection_is_not_replayed(server):
    socket = Socket(server)
    session = socket.authenticate()
    task = video_task()
    socket.send(task)
    socket.receive()
    wait_until_finished(server, task["taskUUID"])
    socket.send({"taskType": "getResponse", "taskUUID": task["taskUUID"]})
    assert socket.receive()["data"][0]["status"] == "success"
    socket.close()
    resumed = Socket(server)
    resumed.authenticate(session)
    assert resumed.next_is_pong()
    resumed.close()


def test_another_session_or_a_fresh_one_gets_nothing(server):
    task = video_task()
    submit_and_leave(server, task)
    wait_until_finished(server, task["taskUUID"])
    for session in (str(uuid.uuid4()), None):
        socket = Socket(server)
        socket.authenticate(session)
        assert socket.next_is_pong()
        socket.close()


def test_cancel_task_over_rest(server):
    running, queued = video_task(width=512, height=288, duration=4, fps=25), video_task()
    assert server.post([running, queued])[0] == 200
    status, body = server.post([{"taskType": "cancelTask", "taskUUID": queued["taskUUID"]}])
    assert (status, body) == (200, {"data": [{"taskType": "cancelTask", "taskUUID": queued["taskUUID"], "status": "cancelled"}]})
    status, body = server.post([{"taskType": "getResponse", "taskUUID": queued["taskUUID"]}])
    (error,) = body["errors"]
    assert status == 400 and error["code"] == "taskCancelled" and "cancelled while queued" in error["message"]
    status, body = server.post([{"taskType": "cancelTask", "taskUUID": queued["taskUUID"]}])
    assert status == 400 and body["errors"][0]["code"] == "taskAlreadyFinished"
    assert server.post([{"taskType": "cancelTask", "taskUUID": running["taskUUID"]}])[0] == 200
    status, body = server.post([{"taskType": "cancelTask", "taskUUID": str(uuid.uuid4())}])
    assert status == 404 and body["errors"][0]["code"] == "taskNotFound"


def test_an_empty_task_array_is_a_clear_error(server):
    status, body = server.post([])
    (error,) = body["errors"]
    assert status == 400 and error["code"] == "invalidRequestBody" and "empty" in error["message"]
    socket = Socket(server)
    socket.connection.send("[]")  # before authenticating, the key is looked for first (issue 27)
    assert socket.receive()["errors"][0]["code"] == "missingApiKey"
    socket.authenticate()
    socket.connection.send("[]")
    assert socket.receive()["errors"][0]["code"] == "invalidRequestBody"
    socket.close()


def test_replay_survives_a_server_restart(tiny_root, tmp_path):
    data_dir = tmp_path / "data"
    first = ServerProcess(data_dir, tiny_root).start()
    try:
        task = video_task()
        session = submit_and_leave(first, task)
    finally:
        first.stop()  # before (or while) the task runs
    second = ServerProcess(data_dir, tiny_root, port=first.port).start()
    try:
        finished = wait_until_finished(second, task["taskUUID"])["data"]
        socket = Socket(second)
        socket.authenticate(session)
        assert socket.receive() == {"data": finished}
        assert socket.next_is_pong()
        socket.close()
    finally:
        second.stop()
