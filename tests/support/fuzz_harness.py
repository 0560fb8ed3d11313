"""What the fuzz tests send and what they check: JSON strategies for both contracts, raw-body generators, and the
invariants every answer must keep (no 5xx, a contract-shaped error that names the parameter)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import struct
import uuid
import wave
import zlib
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from support.server_harness import API_KEY

# The CI run takes a few thousand cases across the targets (TARGETS in test_fuzz.py); the long one (-m fuzz_long)
# five times as many.
settings.register_profile(
    "fuzz", deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)  # fmt: skip
LONG_RUN_FACTOR = 5

RUNWARE_TASK_TYPES = [
    "authentication", "ping", "videoInference", "getResponse", "cancelTask", "imageUpload", "getTaskDetails",
    "listTasks", "imageInference", "", "VIDEOINFERENCE",
]  # fmt: skip
VIDEO_FIELDS = [
    "taskUUID", "model", "positivePrompt", "width", "height", "duration", "fps", "seed", "numberResults",
    "outputType", "outputFormat", "outputQuality", "ttl", "deliveryMethod", "webhookURL", "uploadEndpoint",
    "includeCost", "safety", "inputs", "providerSettings", "settings", "frameImages", "customTaskUUID", "retry",
    "steps", "CFGScale", "negativePrompt", "lora", "routing",
]  # fmt: skip
FUZZ_LORAS = {"fuzz-style": {"file": "fuzz-style.safetensors", "architecture": "ltx-2.3"}}
"""The LoRA the fuzzed server lists (its file need not exist: a task that names it fails in the worker, cleanly)."""
RUNCOMFY_FIELDS = ["prompt", "duration", "resolution", "aspect_ratio", "fps", "generate_audio", "seed", "image_url"]

big_numbers = st.sampled_from([2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**40, -(10**99), 1e308, -1e308, 5e-324, -0.0])
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | big_numbers
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.text(max_size=5).map(lambda text: text * 2000)  # long strings
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=25,
)
uuids = st.uuids(version=4).map(str)


def tiny_video_task(model: str = "ltx-runtime:tiny@1") -> dict:
    return {
        "taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": model,
        "positivePrompt": "fuzzed", "width": 64, "height": 64, "duration": 1, "fps": 8,
    }  # fmt: skip


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width x height (its one IDAT row would not fill it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b"")


HUGE_PNG = "data:image/png;base64," + base64.b64encode(png_claiming(20000, 20000)).decode()
"""A PNG header claiming 20000x20000 pixels, past Pillow's own decompression-bomb limit (was a bare 500)."""


PIXEL_PNG = "data:image/png;base64," + base64.b64encode(png_claiming(1, 1)).decode()
"""A real 1x1 PNG (its one row fills it)."""
frame_items = st.one_of(
    st.fixed_dictionaries({
        "image": st.sampled_from([PIXEL_PNG, "data:image/png;base64,AAAA", str(uuid.uuid4()), "https://example.com/a.png"])
        | json_values,
        "frame": st.sampled_from(["first", "last", 0, 1, 7, 8, 9, -1, 1.5, True, "middle", 2**63]) | json_values,
    }),
    st.sampled_from([PIXEL_PNG, ""]) | json_values,
)  # fmt: skip
keyframe_video_task = st.builds(lambda items: {**tiny_video_task(), "inputs": {"frameImages": items}},
                                st.lists(frame_items, max_size=12))  # fmt: skip
"""Tiny tasks with keyframe lists (8 frames: at most 2 images, frames 0 to 7), mostly wrong somewhere."""


def guided_video_task() -> dict:
    """A task for the guided LTX-2.3 stand-in, which takes steps, CFGScale, negativePrompt and lora, all valid, so
    that mutating one of them reaches its own check."""
    return {**tiny_video_task("ltx-runtime:tiny-ltx23@1"), "steps": 2, "CFGScale": 4.0, "negativePrompt": "fog",
            "lora": [{"model": "fuzz-style", "weight": 0.5}], "routing": {}}  # fmt: skip


def wav_bytes(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A short 16-bit mono WAV file of a rising ramp, written by the standard library."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", (i * 37) % 20000 - 10000) for i in range(int(seconds * rate))))
    return buffer.getvalue()


AUDIO = "data:audio/wav;base64," + base64.b64encode(wav_bytes()).decode()
HOSTILE_AUDIO = [
    "data:audio/wav;base64", "data:audio/wav;base64,", base64.b64encode(wav_bytes()[:40]).decode(),  # cut header
    base64.b64encode(b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/a.wav\n").decode(),  # a playlist: never followed
    base64.b64encode(b"ffconcat version 1.0\nfile /etc/passwd\n").decode(),  # a concat list: never read
    base64.b64encode(b"RIFF\xff\xff\xff\x7fWAVEfmt " + b"\0" * 64).decode(),  # a header claiming 2 GB
    "file:///etc/passwd", "http://[::1/a.wav", str(uuid.UUID(int=7)),
]
"""inputs.audio values that must be refused cleanly (or fail the task cleanly), never crash anything."""


def audio_video_task() -> dict:
    """A valid audio-to-video task for the LTX-2.3 stand-in, so that mutating any field reaches its own check."""
    return {**guided_video_task(), "inputs": {"audio": AUDIO}}


@st.composite
def mutated(draw, base: dict, fields: list[str]) -> dict:
    """A well-formed object with some fields dropped, some set to any JSON value, and maybe unknown keys added."""
    task = dict(base)
    for field in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique=True)):
        if draw(st.booleans()):
            task.pop(field, None)
        else:
            task[field] = draw(json_values)
    task.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    return task


runware_other_task = st.builds(
    lambda task_type, fields: {"taskType": task_type, **fields},
    st.sampled_from(RUNWARE_TASK_TYPES) | st.text(max_size=20) | json_values,
    st.dictionaries(st.sampled_from(["taskUUID", "apiKey", "image", "limit", "offset", "ping", "includePreview"]),
                    json_values | uuids, max_size=4),  # fmt: skip
)
runware_task = (
    st.builds(tiny_video_task).flatmap(lambda base: mutated(base, VIDEO_FIELDS))
    | st.builds(guided_video_task).flatmap(lambda base: mutated(base, VIDEO_FIELDS))
    | keyframe_video_task
    | st.builds(audio_video_task).flatmap(lambda base: mutated(base, VIDEO_FIELDS))
    | st.tuples(st.builds(audio_video_task), st.sampled_from(HOSTILE_AUDIO) | json_values).map(
        lambda pair: {**pair[0], "inputs": {"audio": pair[1]}})
    | runware_other_task
)
runware_body = st.lists(runware_task | json_values, min_size=0, max_size=6) | json_values


def raw_json_texts(valid: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Malformed and hostile JSON text: cut or spliced JSON, deep nesting, duplicate keys, NaN and Infinity,
    huge numbers, lone surrogates, huge arrays, and random bytes."""
    dumped = valid.map(json.dumps)
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(dumped, st.integers(0, 400)).map(lambda pair: pair[0][: pair[1]]),
        st.tuples(dumped, st.integers(0, 400), st.sampled_from(list('{}[]":,\\') + ["\\ud800", "NaN", "\x00"])).map(
            lambda triple: triple[0][: triple[1]] + triple[2] + triple[0][triple[1]:]),  # fmt: skip
        st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth),
        st.integers(1, 120_000).map(lambda depth: '[{"a":' * depth + "1" + "}]" * depth),
        st.integers(1, 200_000).map(lambda depth: "[" * depth),
        st.sampled_from(['[{"taskType":"ping","taskType":"videoInference"}]', '{"prompt":"ab","prompt":"cd"}',
                         '[{"taskType":"ping","ping":NaN}]', '[{"taskType":"ping","ping":Infinity}]',
                         '[{"taskType":"ping","ping":-Infinity}]', '{"prompt":"a cat","seed":1e999}',
                         '[{"taskType":"\\ud800"}]', '[{"\\udfff":1}]', '{"prompt":"\\ud83d"}',
                         '[{"taskType":"getResponse","taskUUID":"' + "9" * 5000 + '"}]',
                         '{"prompt":"a cat","seed":' + "9" * 5000 + "}", '[' + "1" * 4301 + ']']),  # fmt: skip
        st.integers(0, 45_000).map(lambda count: "[" + ",".join(['{"taskType":"ping"}'] * count) + "]"),
        st.integers(0, 300_000).map(lambda count: "[" + ",".join(["0"] * count) + "]"),
    ).map(lambda text: text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))


runware_raw = raw_json_texts(runware_body)
runcomfy_body = st.builds(lambda: {"prompt": "fuzzed", "resolution": "64x64", "duration": 1, "fps": 8}).flatmap(
    lambda base: mutated(base, RUNCOMFY_FIELDS)) | json_values  # fmt: skip
runcomfy_raw = raw_json_texts(runcomfy_body)

# Odd names for /media/NAME and /images/NAME, sent as they are (already percent-encoded where it matters).
TRAVERSALS = [
    "..", "../..", "..%2f..%2ftasks.sqlite3", "%2e%2e", "%2e%2e%2f%2e%2e%2fapi_key", "..%5c..%5capi_key",
    "..\\..\\api_key", "%252e%252e%252fapi_key", "api_key%00.mp4", "%00", ".", "%2e", "....//....//api_key",
    "%c0%ae%c0%ae/api_key", "..%c0%af..%c0%afapi_key", "media", "/etc/passwd", "%2fetc%2fpasswd",
    "00000000-0000-0000-0000-000000000000.mp4", "00000000-0000-0000-0000-000000000000.mp4%0a", "x" * 4000,
    "%ff%fe", "%C3%A9.mp4", "%e2%80%ae4pm.exe", "CON", "a;b", "a?b=c", "#frag",
]  # fmt: skip
odd_names = st.one_of(
    st.sampled_from(TRAVERSALS),
    st.text(min_size=1, max_size=60).map(lambda text: quote(text, safe="%/\\.")),
    st.lists(st.sampled_from(["..", ".", "%2e%2e", "%2f", "%5c", "\\", "/", "%00", "api_key", "tasks.sqlite3"]),
             min_size=1, max_size=8).map("".join),  # fmt: skip
)


class Connection:
    """One keep-alive HTTP connection to the server, reopened when the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, key: str | None = API_KEY):
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return response.status, response.getheader("location"), data
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def check_runware_reply(status: int, raw: bytes) -> dict:
    """Runware's envelope: never a 5xx; errors[] non-empty when present, each with code, message and parameter."""
    assert status < 500, (status, raw[:500])
    body = json.loads(raw)
    assert isinstance(body, dict) and ("data" in body or "errors" in body), body
    if status != 200:
        assert body.get("errors"), body
    if "errors" in body:
        check_runware_errors(body["errors"])
    if "data" in body:
        assert isinstance(body["data"], list), body
    return body


def check_runware_errors(errors: list) -> None:
    assert isinstance(errors, list) and errors, errors
    for error in errors:
        assert isinstance(error.get("code"), str) and error["code"], error
        assert isinstance(error.get("message"), str) and error["message"], error
        assert isinstance(error.get("parameter"), str) and error["parameter"], error


def check_runcomfy_reply(status: int, raw: bytes) -> dict:
    """RunComfy's shape: never a 5xx; an error is {"error": {code (int), name, message, parameter}}."""
    assert status < 500, (status, raw[:500])
    body = json.loads(raw)
    assert isinstance(body, dict), body
    if status >= 400:
        error = body["error"]
        assert isinstance(error["code"], int) and error["name"] and error["message"], error
        assert isinstance(error.get("parameter"), str) and error["parameter"], error
    return body
