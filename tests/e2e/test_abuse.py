"""Abuse limits, on one real server with small limits: per-key rate limits on every task type, WebSockets that stay
silent or flood, request bodies that trickle in, odd names on /media and /images, and other keys' ids."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
import uuid

import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support.fuzz_harness import TRAVERSALS, Connection, check_runcomfy_reply, check_runware_reply
from support.server_harness import API_KEY, OTHER_KEY, ServerProcess, video_task

RATE_KEYS = [f"abuse-key-{n}" for n in range(6)]
PER_SECOND, BURST = 0.5, 40  # slow refill: a burst test cannot be refilled while it runs
BODY_SECONDS, AUTH_SECONDS, IDLE_SECONDS = 2, 1, 2
FRAMES_PER_SECOND, FRAMES_BURST = 5, 10
SECRET = "abuse-secret-next-to-the-media-folder"


@pytest.fixture(scope="module")
def server(tiny_root, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("abuse")
    process = ServerProcess(
        data_dir, tiny_root, LTX_API_KEYS=",".join([API_KEY, OTHER_KEY, *RATE_KEYS]),
        LTX_RATE_LIMIT_PER_SECOND=str(PER_SECOND), LTX_RATE_LIMIT_BURST=str(BURST),
        LTX_BODY_TIMEOUT_SECONDS=str(BODY_SECONDS), LTX_WS_AUTH_TIMEOUT_SECONDS=str(AUTH_SECONDS),
        LTX_WS_IDLE_SECONDS=str(IDLE_SECONDS), LTX_WS_MESSAGES_PER_SECOND=str(FRAMES_PER_SECOND),
        LTX_WS_MESSAGES_BURST=str(FRAMES_BURST),
    ).start()  # fmt: skip
    (data_dir / "secret.txt").write_text(SECRET)
    process.task = video_task(width=64, height=64)  # a real result for the /media tests, submitted early
    assert process.post([process.task])[0] == 200
    yield process
    process.stop()


def ping() -> dict:
    return {"taskType": "ping", "ping": True}


# -- per-key rate limits --------------------------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_rate_limit_errors_and_others_do_not(server):
    key = RATE_KEYS[0]
    status, body = server.post([ping() for _ in range(BURST + 5)], key=key)
    assert status == 200 and len(body["data"]) == BURST  # the burst passes...
    assert len(body["errors"]) == 5  # ...the rest of the batch is refused, each naming the limit
    assert {(error["code"], error["parameter"]) for error in body["errors"]} == {("rateLimitExceeded", "apiKey")}
    assert "tasks per second" in body["errors"][0]["message"]
    status, body = server.post([ping()], key=key)
    assert status == 429 and body["errors"][0]["code"] == "rateLimitExceeded"
    assert server.post([ping()], key=RATE_KEYS[1])[0] == 200  # another key is not held up
    time.sleep(1.2 / PER_SECOND)  # the bucket refills at PER_SECOND
    assert server.post([ping()], key=key)[0] == 200


def test_every_task_type_counts_towards_the_rate(server):
    """Not only videoInference: polls, lists, uploads, cancels and bad tasks all take from the same bucket."""
    key = RATE_KEYS[2]
    unknown = str(uuid.uuid4())
    kinds = [
        {"taskType": "getResponse", "taskUUID": unknown}, {"taskType": "getTaskDetails", "taskUUID": unknown},
        {"taskType": "cancelTask", "taskUUID": unknown}, {"taskType": "listTasks"},
        {"taskType": "imageUpload", "image": "bm90IGFuIGltYWdl"}, video_task(fps=1), {"taskType": "nonsense"},
    ]  # fmt: skip
    batch = [kinds[n % len(kinds)] for n in range(BURST)]
    status, body = server.post(batch, key=key)
    assert "rateLimitExceeded" not in {error["code"] for error in body.get("errors", [])}
    status, body = server.post([{"taskType": "listTasks"}], key=key)
    assert status == 429 and body["errors"][0]["code"] == "rateLimitExceeded"


def test_runcomfy_requests_share_the_key_rate(server):
    key = RATE_KEYS[3]
    connection = Connection(server.port)
    statuses = [connection.request("GET", "/v1/requests", key=key)[0] for _ in range(BURST)]
    assert statuses == [200] * BURST
    status, _, raw = connection.request("GET", "/v1/requests", key=key)
    error = check_runcomfy_reply(status, raw)["error"]
    assert (status, error["code"], error["name"]) == (429, 429001, "TooManyRequests")
    assert server.post([ping()], key=key)[0] == 429  # one bucket per key, whichever API it calls
    connection.close()


# -- WebSocket limits -----------------------------------------------------------------------------------------------


def ws_url(server) -> str:
    return f"ws://127.0.0.1:{server.port}/v1"


def test_a_websocket_that_never_authenticates_is_closed(server):
    """Counted from the connection: frames without an authentication (refused) do not extend the time."""
    started = time.monotonic()
    with connect(ws_url(server)) as client:
        for _ in range(2):
            client.send(json.dumps([ping()]))
            assert json.loads(client.recv(timeout=10))["errors"][0]["code"] == "missingApiKey"
            time.sleep(AUTH_SECONDS * 0.4)
        (error,) = json.loads(client.recv(timeout=10))["errors"]
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=10)
    assert (error["code"], error["parameter"], error["taskType"]) == ("authenticationTimeout", "apiKey", "authentication")
    assert closed.value.rcvd.code == 1008
    assert AUTH_SECONDS <= time.monotonic() - started < AUTH_SECONDS + 3


def test_an_authenticated_websocket_that_goes_silent_is_closed(server):
    with connect(ws_url(server)) as client:
        client.send(json.dumps([{"taskType": "authentication", "apiKey": RATE_KEYS[4]}]))
        client.recv(timeout=10)
        started = time.monotonic()
        (error,) = json.loads(client.recv(timeout=10))["errors"]
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=10)
    assert error["code"] == "connectionIdle" and closed.value.rcvd.code == 1000
    assert IDLE_SECONDS - 0.5 <= time.monotonic() - started < IDLE_SECONDS + 3


def test_a_websocket_that_floods_is_told_and_closed(server):
    with connect(ws_url(server)) as client:
        client.send(json.dumps([{"taskType": "authentication", "apiKey": RATE_KEYS[5]}]))
        client.recv(timeout=10)
        for _ in range(FRAMES_BURST * 4):
            client.send(json.dumps([ping()]))
        replies = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                replies.append(json.loads(client.recv(timeout=10)))
    pongs = [reply for reply in replies if reply.get("data") == [{"taskType": "ping", "pong": True}]]
    assert FRAMES_BURST - 1 <= len(pongs) <= FRAMES_BURST + 2  # the burst (the auth frame took one), plus the refill
    assert replies[-1]["errors"][0]["code"] == "rateLimitExceeded" and "frames" in replies[-1]["errors"][0]["message"]
    assert closed.value.rcvd.code == 1008
    with connect(ws_url(server)) as client:  # the server still takes new connections
        client.send(json.dumps([{"taskType": "authentication", "apiKey": OTHER_KEY}, ping()]))
        assert "connectionSessionUUID" in json.loads(client.recv(timeout=10))["data"][0]


# -- slow bodies ----------------------------------------------------------------------------------------------------


def trickle(server, path: str, key: str) -> tuple[float, bytes]:
    """Send the headers of a 100-byte body, then one byte per second; what comes back, and when."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    raw.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Authorization: Bearer {key}\r\nContent-Length: 100\r\n\r\n").encode())  # fmt: skip
    started = time.monotonic()
    stop = threading.Event()

    def drip():
        # One byte a second, never more than 0.5 s apart, until half a second before the deadline: the server must cut
        # the body for its total time, not for a silence. (A byte still in flight when the server closes would bring
        # back a reset that can discard its answer before the test reads it.)
        while not stop.wait(1.0) and time.monotonic() - started < BODY_SECONDS - 0.5:
            try:
                raw.sendall(b" ")
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    answer = b""
    while chunk := raw.recv(65536):  # until the server closes the connection
        answer += chunk
    elapsed = time.monotonic() - started
    stop.set()
    raw.close()
    return elapsed, answer


def parse_response(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_body_that_trickles_in_is_cut_off_and_others_are_served_meanwhile(server):
    result = {}
    slow = threading.Thread(target=lambda: result.update(answer=trickle(server, "/v1", API_KEY)))
    slow.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert server.post([ping()], key=OTHER_KEY)[0] == 200  # the slow client holds up no one
    assert time.monotonic() - started < 1
    slow.join(30)
    elapsed, answer = result["answer"]
    status, body = parse_response(answer)
    (error,) = check_runware_reply(status, body)["errors"]
    assert (status, error["code"], error["parameter"]) == (408, "requestBodyTimeout", "body")
    assert BODY_SECONDS <= elapsed < BODY_SECONDS + 2  # cut at the deadline, and the connection closed


def test_a_runcomfy_body_that_trickles_in_is_cut_off(server):
    elapsed, answer = trickle(server, "/v1/models/ltx-runtime/tiny/fast/text-to-video", OTHER_KEY)
    status, body = parse_response(answer)
    error = check_runcomfy_reply(status, body)["error"]
    assert (status, error["code"], error["parameter"]) == (408, 408001, "body")
    assert BODY_SECONDS <= elapsed < BODY_SECONDS + 2


# -- /media and /images names ---------------------------------------------------------------------------------------


def finished_video(server, task_uuid: str) -> str:
    """The task's videoURL once done, polling once a second (within the key's rate)."""
    for _ in range(120):
        status, body = server.post([{"taskType": "getResponse", "taskUUID": task_uuid}])
        (item,) = body["data"]
        if item["status"] == "success":
            return item["videoURL"]
        time.sleep(1)
    raise TimeoutError(task_uuid)


def test_odd_media_and_image_names_are_404_and_never_reach_outside(server):
    """A real result is served; every traversal or odd spelling of a name (including ones built from that real file
    and from the files next to the media folder) is a contract-shaped 404 that reveals nothing."""
    real = finished_video(server, server.task["taskUUID"]).rsplit("/", 1)[1]
    connection = Connection(server.port)
    status, _, video = connection.request("GET", f"/media/{real}", key=None)
    assert status == 200 and video[4:8] == b"ftyp"
    names = TRAVERSALS + [
        f"..%2fmedia%2f{real}", f"%2e%2e%2fmedia%2f{real}", f"{real}%00", f"{real}%0a", real.upper(), f"./{real}",
        f"{real}/", f"..%5c{real}", "..%2fsecret.txt", "..%2f..%2fsecret.txt", "..%2ftasks.sqlite3", "..%2fapi_key",
    ]  # fmt: skip
    for folder in ("media", "images"):
        for name in names:
            status, location, raw = connection.request("GET", f"/{folder}/{name}", key=None)
            assert SECRET.encode() not in raw and b"SQLite format" not in raw and not raw.startswith(b"\x00\x00\x00")
            if status == 307:  # a trailing slash is redirected to the name without it, which is checked above
                assert location.endswith(f"/{folder}/{name[:-1]}"), location
                continue
            assert status == 404, (folder, name, status)
            (error,) = json.loads(raw)["errors"]
            assert error["code"] in ("mediaNotFound", "imageNotFound", "notFound"), error
    connection.close()


# -- other keys' ids ------------------------------------------------------------------------------------------------


def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def without(reply: tuple[int, dict], secret_id: str, unknown_id: str) -> str:
    """A reply with the ids blanked out, so the reply for another key's id can be compared with an unknown id's."""
    status, body = reply
    return json.dumps([status, body]).replace(secret_id, "ID").replace(unknown_id, "ID")


def test_another_keys_task_and_image_ids_look_unknown(server):
    task = video_task(width=64, height=64)
    assert server.post([task])[0] == 200
    upload = server.post([{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": png_base64()}])
    image_uuid = upload[1]["data"][0]["imageUUID"]
    unknown = str(uuid.uuid4())
    for task_type in ("getResponse", "getTaskDetails", "cancelTask"):
        theirs = server.post([{"taskType": task_type, "taskUUID": task["taskUUID"]}], key=OTHER_KEY)
        nobodys = server.post([{"taskType": task_type, "taskUUID": unknown}], key=OTHER_KEY)
        assert theirs[0] == 404 and without(theirs, task["taskUUID"], unknown) == without(nobodys, task["taskUUID"], unknown)
    status, body = server.post([{"taskType": "listTasks", "limit": 50}], key=OTHER_KEY)
    assert task["taskUUID"] not in json.dumps(body)
    # The owner's task was not cancelled by the other key's cancelTask.
    status, body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert status == 200 and body["data"][0]["status"] in ("processing", "success")
    # An image uploaded by one key, used by another, is refused exactly as an image nobody uploaded.
    theirs = server.post([video_task(width=64, height=64, inputs={"frameImages": [image_uuid]})], key=OTHER_KEY)
    nobodys = server.post([video_task(width=64, height=64, inputs={"frameImages": [unknown]})], key=OTHER_KEY)
    strip = lambda reply: {k: v for k, v in reply[1]["errors"][0].items() if k != "taskUUID"}  # noqa: E731
    assert theirs[0] == nobodys[0] == 400
    assert json.dumps(strip(theirs)).replace(image_uuid, "ID") == json.dumps(strip(nobodys)).replace(unknown, "ID")


def test_another_keys_runcomfy_request_looks_unknown(server):
    connection = Connection(server.port)
    body = json.dumps({"prompt": "a red square", "resolution": "64x64", "duration": 1, "fps": 8}).encode()
    status, _, raw = connection.request("POST", "/v1/models/ltx-runtime/tiny/fast/text-to-video", body)
    request_id = json.loads(raw)["request_id"]
    unknown = str(uuid.uuid4())
    for method, action in (("GET", "status"), ("GET", "result"), ("POST", "cancel")):
        theirs = connection.request(method, f"/v1/requests/{request_id}/{action}", key=OTHER_KEY)
        nobodys = connection.request(method, f"/v1/requests/{unknown}/{action}", key=OTHER_KEY)
        assert theirs[0] == nobodys[0] == 404
        assert theirs[2].replace(request_id.encode(), b"ID") == nobodys[2].replace(unknown.encode(), b"ID")
    status, _, raw = connection.request("GET", f"/v1/requests/{request_id}/status")
    assert status == 200 and json.loads(raw)["status"] != "cancelled"
    connection.close()


def test_the_log_has_no_traceback(server):
    log = server.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log
