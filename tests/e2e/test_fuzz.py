"""Fuzzing the real server (one process, tiny weights) with hypothesis: Runware REST bodies, Runware WebSocket frames
(text and binary), RunComfy bodies, paths and ids, and odd /media and /images names.

Every answer keeps the contract's shape and names the parameter, nothing is a 5xx, the server log has no traceback,
and a canary task submitted before the fuzzing still finishes with a valid video. The CI-sized run is the default;
`pytest tests/e2e/test_fuzz.py -m "fuzz_long or not slow"` adds the same targets with five times as many cases
(docs/reliability.md).
"""

from __future__ import annotations

import json
import time
import uuid
from functools import partial

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import probe
from support.fuzz_harness import (
    FUZZ_LORAS, HOSTILE_AUDIO, HUGE_PNG, LONG_RUN_FACTOR, PIXEL_PNG, Connection, audio_video_task, tiny_video_task, check_runcomfy_reply, check_runware_errors, check_runware_reply, json_values,
    odd_names, runcomfy_body, runcomfy_raw, runware_body, runware_raw, uuids,
)  # fmt: skip
from support.server_harness import API_KEY, OTHER_KEY, ServerProcess, download, video_task

MAX_BODY = 1024 * 1024
RUNCOMFY_SUBMIT = "/v1/models/ltx-runtime/tiny/fast/text-to-video"
SECRET = "fuzz-secret-outside-the-media-folder"


@pytest.fixture(scope="module")
def server(tiny_root, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz")
    process = ServerProcess(
        data_dir, tiny_root, LTX_MAX_BODY_BYTES=str(MAX_BODY), LTX_RATE_LIMIT_PER_SECOND="0", LTX_MAX_PENDING_PER_KEY="2",
        LTX_WS_MESSAGES_PER_SECOND="1000000", LTX_WS_MESSAGES_BURST="1000000", LTX_KEY_CHECK_FAILURES_PER_SECOND="0",
        LTX_SYNC_WAIT_SECONDS="1",  # a fuzzed sync task waits briefly, then answers as async
        LTX_LORAS=json.dumps(FUZZ_LORAS),
    ).start()  # fmt: skip
    (data_dir / "secret.txt").write_text(SECRET)  # what a traversal would find next to media/ and images/
    process.canary = video_task(width=64, height=64)
    assert process.post([process.canary], key=OTHER_KEY)[0] == 200
    yield process
    process.stop()


@pytest.fixture(scope="module")
def http(server):
    connection = Connection(server.port)
    yield connection
    connection.close()


# -- the targets: (name, strategy, check, CI cases, regression examples) ------------------------------------------------


def runware_rest(http, body):
    status, _, raw = http.request("POST", "/v1", json.dumps(body).encode())
    check_runware_reply(status, raw)


def runware_rest_raw(http, raw_body):
    status, _, raw = http.request("POST", "/v1", raw_body)
    check_runware_reply(status, raw)


class RunwareSocket:
    """One authenticated WebSocket, reopened if it closes. After each fuzz frame it sends a getResponse for a fresh
    id and reads frames up to that sentinel's error, checking every frame on the way."""

    def __init__(self, port: int):
        self.url = f"ws://127.0.0.1:{port}/v1"
        self.socket = None

    def open(self):
        self.socket = connect(self.url, max_size=None, open_timeout=30)
        self.socket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        assert "connectionSessionUUID" in json.loads(self.socket.recv(timeout=30))["data"][0]

    def exchange(self, frame: str | bytes) -> None:
        if self.socket is None:
            self.open()
        sentinel = str(uuid.uuid4())
        self.socket.send(frame)
        self.socket.send(json.dumps([{"taskType": "getResponse", "taskUUID": sentinel}]))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            assert isinstance(reply, dict) and ("data" in reply or "errors" in reply), reply
            if "errors" in reply:
                check_runware_errors(reply["errors"])
                if any(error.get("taskUUID") == sentinel for error in reply["errors"]):
                    return

    def close(self):
        if self.socket is not None:
            self.socket.close()


@pytest.fixture
def websocket(server):  # one per test: a socket left unused for LTX_WS_IDLE_SECONDS is closed by the server
    socket = RunwareSocket(server.port)
    yield socket
    socket.close()


def runware_websocket(websocket, frame):
    try:
        websocket.exchange(frame)
    except ConnectionClosed as closed:
        websocket.socket = None
        raise AssertionError(f"the server closed the socket: {closed}") from None


def within_frame_limit(frame: str | bytes) -> bool:
    """Frames over the size limit close the socket by design (test_a_huge_frame_closes_only_that_socket)."""
    return len(frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame) < MAX_BODY


def within_body_limit(body: bytes) -> bool:
    """A body over the limit is refused from its Content-Length and the connection closed while the client may still
    be sending (a broken pipe on its side); test_server_errors.py checks that 413 with the declared size alone."""
    return len(body) <= MAX_BODY


def runcomfy_submit(http, raw_body):
    status, _, raw = http.request("POST", RUNCOMFY_SUBMIT, raw_body)
    check_runcomfy_reply(status, raw)


def runcomfy_routes(http, case):
    method, path = case
    status, location, raw = http.request(method, path)
    if status == 307:  # Starlette's redirect of a path with a trailing slash (a raw "#" ends the path there)
        assert location_path(location).startswith("/v1/"), location
        return
    check_runcomfy_reply(status, raw)


def location_path(location: str) -> str:
    return "/" + location.split("//", 1)[-1].split("/", 1)[-1]


runcomfy_paths = st.one_of(
    st.tuples(st.just("POST"), st.builds("/v1/models/{}/{}/{}/{}".format, *[odd_names] * 4)),
    st.tuples(st.sampled_from(["GET", "POST"]), st.builds("/v1/requests/{}/{}".format, odd_names | uuids,
                                                          st.sampled_from(["status", "result", "cancel", "x"]))),
    st.tuples(st.sampled_from(["GET", "DELETE", "PUT"]), st.builds("/v1/requests?limit={}".format, odd_names)),
)  # fmt: skip


def media_names(http, case):
    """An odd name is 404 and contract-shaped, never a file from outside the folders (a trailing slash may first
    be redirected to the same name without it)."""
    folder, name = case
    path = f"/{folder}/{name}"
    status, location, raw = http.request("GET", path, key=None)
    assert SECRET.encode() not in raw and b"SQLite format" not in raw
    if status == 307:
        assert location_path(location).startswith(f"/{folder}/"), location
        return
    assert status == 404, (path, status, raw[:300])
    (error,) = json.loads(raw)["errors"]
    assert error["code"] in ("mediaNotFound", "imageNotFound", "notFound") and error["message"], error


TARGETS = {
    "runware_rest": (runware_body, runware_rest, "http", 400, [
        [{"taskType": "videoInference", "retry": 1e308}],
        [{**tiny_video_task(), "numberResults": None}],  # was a TypeError in job_seeds: HTTP 500
        [{**tiny_video_task(), "": None}],  # was parameter "" (names nothing)
        [{"taskType": "x" * 100_000}],
        # Issue 27's bare 500s: a data URI without a comma, a PNG header claiming 20000x20000, an offset past SQLite's
        # integers, URLs urllib cannot split, and a batch whose second task crashed after the first was queued.
        [{**tiny_video_task(), "inputs": {"frameImages": ["data:image/png;base64"]}}],
        [{"taskType": "imageUpload", "image": "data:image/png;base64"}],
        [{**tiny_video_task(), "inputs": {"frameImages": [HUGE_PNG]}}],
        [{"taskType": "imageUpload", "image": HUGE_PNG}],
        [{"taskType": "listTasks", "offset": 2**63}],
        [{**tiny_video_task(), "webhookURL": "http://[::1"}],
        [{**tiny_video_task(), "uploadEndpoint": "http://example.com\uff03x/"}],
        [{**tiny_video_task(), "inputs": {"frameImages": ["http://[::1/a.png"]}}],
        # Keyframes (issue 21): too many for 8 frames, two for one frame, past the last frame, a frame of no type.
        [{**tiny_video_task(), "inputs": {"frameImages": [{"image": PIXEL_PNG, "frame": i} for i in range(3)]}}],
        [{**tiny_video_task(), "inputs": {"frameImages": [{"image": PIXEL_PNG, "frame": 7}, {"image": PIXEL_PNG, "frame": "last"}]}}],
        [{**tiny_video_task(), "inputs": {"frameImages": [{"image": PIXEL_PNG, "frame": 8}]}}],
        [{**tiny_video_task(), "inputs": {"frameImages": [{"image": PIXEL_PNG, "frame": 2**63}]}}],
        [{**tiny_video_task(), "inputs": {"frameImages": [{"image": PIXEL_PNG, "frame": [0]}]}}],
        [{**tiny_video_task(), "width": 1024, "height": 64}],  # accepted, then failed in the VAE decode
        *([{**audio_video_task(), "inputs": {"audio": audio}}] for audio in HOSTILE_AUDIO),  # issue 21: inputs.audio
        [tiny_video_task(), {"taskType": "listTasks", "offset": 2**64}],
    ]),
    "runware_rest_raw": (runware_raw.filter(within_body_limit), runware_rest_raw, "http", 400, [
        b"[" * 100_000 + b"]" * 100_000,  # was a RecursionError: HTTP 500
        b'[{"taskType":"\\ud800"}]',  # was an unencodable error item: HTTP 500
        b'[{"taskType":"videoInference","model":"ltx-runtime:tiny@1","retry":NaN}]',
        b'[{"taskType":"ping","taskType":"videoInference"}]',
        b"[" + b",".join([b"{}"] * 50_000) + b"]",
        b"[" + b",".join([b"{}"] * 300_000) + b"]",  # more values than a body may hold: refused before parsing
    ]),
    "runware_websocket": (st.one_of(runware_body.map(json.dumps), runware_raw,
                                    runware_raw.map(lambda raw: raw.decode("utf-8", "replace"))).filter(within_frame_limit),
                          runware_websocket, "websocket", 400, [
        b"\x00\x01binary",  # was a KeyError on receive_text: the socket died with a traceback
        "[" * 50_000 + "]" * 50_000,
        "{}",
    ]),  # fmt: skip
    "runcomfy_submit": (st.one_of(runcomfy_body.map(lambda body: json.dumps(body).encode()), runcomfy_raw.filter(within_body_limit)),
                        runcomfy_submit, "http", 400, [
        b'{"prompt": "fuzzed", "resolution": [], "fps": 8}',  # was a TypeError (unhashable list): HTTP 500
        b'{"prompt":"\\ud800 cat"}', b'{"prompt":"ab","seed":1e999}',
    ]),
    "runcomfy_routes": (runcomfy_paths, runcomfy_routes, "http", 300, [
        ("GET", "/v1/requests?limit=abc"),  # was FastAPI's own 422 {"detail": [...]}
        ("DELETE", "/v1/requests/x/status"),  # was Starlette's {"detail": "Method Not Allowed"}
    ]),
    "media_names": (st.tuples(st.sampled_from(["media", "images"]), odd_names), media_names, "http", 300, [
        ("media", "..%2f..%2fsecret.txt"),  # was Starlette's {"detail": "Not Found"}
        ("images", "%2e%2e%2fsecret.txt"),
    ]),
}


def run_target(name: str, cases: int, request) -> None:
    strategy, check, fixture, _, examples = TARGETS[name]
    check = partial(check, request.getfixturevalue(fixture))

    cases_run = 0

    @settings(settings.get_profile("fuzz"), max_examples=cases)
    @given(strategy)
    def fuzz(case):
        nonlocal cases_run
        cases_run += 1
        check(case)

    for case in examples:
        fuzz = example(case)(fuzz)
    started = time.monotonic()
    fuzz()
    print(f"fuzz target {name}: {cases_run} cases in {time.monotonic() - started:.1f} s")  # shown with -s


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz(name, server, request):
    run_target(name, TARGETS[name][3], request)


@pytest.mark.fuzz_long
@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_long(name, server, request):
    run_target(name, TARGETS[name][3] * LONG_RUN_FACTOR, request)


def test_a_huge_frame_closes_only_that_socket(server, websocket):
    """A frame over the size limit closes that socket (1009, message too big); the next connection works."""
    with connect(f"ws://127.0.0.1:{server.port}/v1", max_size=None) as socket:
        socket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        socket.recv(timeout=30)
        socket.send("[" + " " * (MAX_BODY + 1) + "]")
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
        assert closed.value.rcvd.code == 1009
    websocket.socket = None
    websocket.exchange(json.dumps([{"taskType": "ping", "ping": True}]))


def test_the_canary_and_the_log_after_the_fuzzing(server, tmp_path):
    """Run last in this module: the task submitted before the fuzzing finishes with a valid video, the server is
    still ready, and its log (workers included) has no traceback or unhandled error."""
    (item,) = server.wait_for_results(server.canary["taskUUID"], key=OTHER_KEY, timeout=600)
    path, _ = download(item["videoURL"], tmp_path / "canary.mp4")
    video = probe(path)
    assert (video.width, video.height, video.frames, video.fps) == (64, 64, 8, 8) and video.duration == pytest.approx(1, abs=0.15)
    status, _, _ = Connection(server.port).request("GET", "/health/ready")
    assert status == 200
    log = server.log()
    for marker in ("Traceback", "Exception in ASGI application", "Unhandled", "Error in"):
        assert marker not in log, log[log.find(marker) - 2000: log.find(marker) + 3000]
