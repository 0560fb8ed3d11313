"""Audio-to-video (`inputs.audio`) through the real demo server, over REST and WebSocket: a data URI, plain base64
and a URL fetched by the guarded client; the clip's audio track is the input's. Bad input is refused naming
inputs.audio, before the ack where it can be, else as the task's failure."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from websockets.sync.client import connect

from conftest import probe
from ltx_runtime.audio_input import decode_audio
from support.audio import snr_db, tone
from support.server_harness import API_KEY, download, server_fixture, video_task

pytestmark = pytest.mark.slow  # a server of its own and several clips

MODEL = "ltx-runtime:tiny-ltx23@1"  # LTX-2.3's recipe and fields: audio in settings.audio, 48 kHz


@pytest.fixture(scope="module")
def host():
    """A loopback HTTP server: /song.m4a is an M4A file, /picture.jpg is not audio."""
    files = {"/song.m4a": tone(1.5, fmt="m4a"), "/picture.jpg": b"\xff\xd8\xff\xe0 not audio" * 40}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    http.files = files
    yield http
    http.shutdown()


server = server_fixture("server-audio", LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1")


def audio_task(audio, **fields):
    return video_task(**{"model": MODEL, "width": 96, "height": 64, "duration": 1, "fps": 12, "steps": 2,
                         "inputs": {"audio": audio}, **fields})  # fmt: skip


def check_soundtrack(item, source: bytes, tmp_path):
    """The downloaded clip: its size and frames, a 48 kHz stereo AAC track of the clip's length, equal to the input
    (trimmed to 1 s) within AAC's loss."""
    path, _ = download(item["videoURL"], tmp_path / f"{item['videoUUID']}.mp4")
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 12, 12)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert abs(info.audio_duration - 1.0) < 0.05
    expected = decode_audio(source, 48000)[:48000]
    assert snr_db(expected[2400:45600], decode_audio(path.read_bytes(), 48000)[2400:45600]) > 15


def failure_of(server, task_uuid: str) -> dict:
    deadline = time.time() + 60
    while time.time() < deadline:
        status, body = server.post([{"taskType": "getResponse", "taskUUID": task_uuid}])
        if "errors" in body:
            return body["errors"][0]
        time.sleep(0.2)
    raise TimeoutError(task_uuid)


def test_rest_a_data_uri_wav(server, tmp_path):
    wav = tone(1.5)
    task = audio_task("data:audio/wav;base64," + base64.b64encode(wav).decode())
    status, body = server.post([task])
    assert (status, body["data"][0]) == (200, {"taskType": "videoInference", "taskUUID": task["taskUUID"]})
    check_soundtrack(server.wait_for_results(task["taskUUID"])[0], wav, tmp_path)
    details = server.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]
    assert base64.b64encode(wav).decode()[:200] not in json.dumps(details)  # the data is kept once, never echoed


def test_websocket_plain_base64_mp3(server, tmp_path):
    mp3 = tone(1.5, fmt="mp3")
    task = audio_task(base64.b64encode(mp3).decode())
    with connect(f"ws://127.0.0.1:{server.port}/v1") as socket:
        socket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        json.loads(socket.recv(timeout=10))
        socket.send(json.dumps([task]))
        assert json.loads(socket.recv(timeout=10)) == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
        for _ in range(600):
            socket.send(json.dumps([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]))
            reply = json.loads(socket.recv(timeout=10))
            assert "errors" not in reply, reply
            if reply["data"][0]["status"] == "success":
                break
            time.sleep(0.2)
    check_soundtrack(reply["data"][0], mp3, tmp_path)


def test_rest_an_audio_url_from_an_allowlisted_host(server, host, tmp_path):
    task = audio_task(f"http://127.0.0.1:{host.server_address[1]}/song.m4a")
    assert server.post([task])[0] == 200  # acknowledged at once; fetched after the reply
    check_soundtrack(server.wait_for_results(task["taskUUID"])[0], host.files["/song.m4a"], tmp_path)


@pytest.mark.parametrize("url, says", [
    ("http://127.0.0.1:{port}/picture.jpg", "not readable"),
    ("http://127.0.0.1:{port}/missing.wav", "could not be fetched"),
    ("http://169.254.169.254/latest/meta-data/", "refused"),  # link-local cloud metadata: never connected to
])
def test_a_fetched_url_that_is_not_audio_fails_the_task_naming_inputs_audio(server, host, url, says):
    task = audio_task(url.format(port=host.server_address[1]))
    assert server.post([task])[0] == 200
    error = failure_of(server, task["taskUUID"])
    assert error["code"] == "invalidAudio" and error["message"].startswith("inputs.audio: ") and says in error["message"]


@pytest.mark.parametrize(
    "fields, code, says",
    [
        (dict(inputs={"audio": base64.b64encode(b"not audio" * 50).decode()}), "invalidAudio", "not readable"),
        (dict(inputs={"audio": "data:audio/wav;base64,@@@"}), "invalidAudio", "not valid base64"),
        (dict(inputs={"audio": "A" * (14 * 1024 * 1024)}), "invalidAudio", "larger than"),
        (dict(inputs={"audio": ""}), "invalidAudio", "URL, a data URI or base64"),
        (dict(inputs={"audio": 42}), "invalidAudio", "URL, a data URI or base64"),
        (dict(inputs={"audio": str(uuid.uuid4())}), "unsupportedParameter", "mediaStorage"),
        (dict(inputs={"audio": "ftp://127.0.0.1/song.wav"}), "invalidAudio", "not valid base64"),  # no other scheme
        (dict(model="ltx-runtime:tiny@1", steps=None), "unsupportedParameter", "does not generate to a given audio"),
        (dict(settings={"audio": False}), "invalidAudio", "settings.audio false"),
    ],
)
def test_bad_input_audio_is_refused_before_the_ack(server, fields, code, says):
    task = audio_task(base64.b64encode(tone(1)).decode(), **fields)
    if task.get("steps") is None:
        task.pop("steps")
    status, body = server.post([task])
    (error,) = body["errors"]
    assert status == 400 and error["code"] == code and error["parameter"] == "inputs.audio" and says in error["message"]
