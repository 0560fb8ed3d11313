"""Bad input: every wrong request gets a contract-shaped error naming the parameter, never a 500, and loses nothing."""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
import urllib.request
import uuid

import pytest
from PIL import Image

from server.api.runware.service import INVALID_KEY_MESSAGE
from server_harness import API_KEY, OTHER_KEY, ServerProcess, video_task

U = "6f1c3e2a-1b2c-4d5e-8f90-123456789abc"


def huge_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 4000), (0, 0, 0)).save(buffer, format="PNG")  # 20 Mpixel, a few KB compressed
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(tiny_root, tmp_path_factory):
    process = ServerProcess(
        tmp_path_factory.mktemp("server-errors"), tiny_root, LTX_MAX_PENDING_PER_KEY="3", LTX_LOG_FORMAT="json"
    ).start()
    yield process
    process.stop()


def fast(**fields):
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "lightricks:2@1",
            "positivePrompt": "a cat on a boat", "width": 1920, "height": 1080, "duration": 6, "fps": 25}
    task.update(fields)
    return {key: value for key, value in task.items() if value is not DROP}


def ltx23(**fields):
    return fast(model="lightricks:ltx@2.3", **fields)


def ltx23_fast(**fields):
    return fast(model="lightricks:ltx@2.3-fast", **fields)


def ltx2(**fields):
    return fast(model="lightricks:ltx@2", **fields)


DROP = object()

# (name, task, expected code, expected parameter)
VIDEO_CASES = [
    ("missing taskUUID", fast(taskUUID=DROP), "missingTaskUUID", "taskUUID"),
    ("taskUUID not a uuid", fast(taskUUID="abc"), "invalidTaskUUID", "taskUUID"),
    ("missing model", fast(model=DROP), "missingModel", "model"),
    ("unknown model", fast(model="lightricks:9@9"), "invalidModel", "model"),
    ("model not a string", fast(model=21), "invalidModel", "model"),
    ("missing prompt", fast(positivePrompt=DROP), "missingPositivePrompt", "positivePrompt"),
    ("prompt too short", fast(positivePrompt="a"), "invalidPositivePrompt", "positivePrompt"),
    ("prompt too long", fast(positivePrompt="a" * 10001), "invalidPositivePrompt", "positivePrompt"),
    ("prompt not a string", fast(positivePrompt=123), "invalidPositivePrompt", "positivePrompt"),
    ("width without height", fast(height=DROP), "missingHeight", "height"),
    ("height without width", fast(width=DROP), "missingWidth", "width"),
    ("width a string", fast(width="1920"), "invalidWidth", "width"),
    ("size not offered", fast(width=1280, height=720), "unsupportedDimensions", "width"),
    ("portrait on Fast", fast(width=1080, height=1920), "unsupportedDimensions", "width"),
    ("duration not offered", fast(duration=7), "invalidDuration", "duration"),
    ("duration a string", fast(duration="6"), "invalidDuration", "duration"),
    ("fps not offered", fast(fps=30), "invalidFps", "fps"),
    ("24 fps on Fast", fast(fps=24), "invalidFps", "fps"),
    ("fps a float", fast(fps=25.5), "invalidFps", "fps"),
    ("numberResults 0", fast(numberResults=0), "invalidNumberResults", "numberResults"),
    ("numberResults 5", fast(numberResults=5), "invalidNumberResults", "numberResults"),
    ("numberResults a boolean", fast(numberResults=True), "invalidNumberResults", "numberResults"),
    ("outputType base64", fast(outputType="base64Data"), "invalidOutputType", "outputType"),
    ("outputFormat GIF", fast(outputFormat="GIF"), "invalidOutputFormat", "outputFormat"),
    ("outputQuality 19", fast(outputQuality=19), "invalidOutputQuality", "outputQuality"),
    ("outputQuality 100", fast(outputQuality=100), "invalidOutputQuality", "outputQuality"),
    ("ttl under 60", fast(ttl=59), "invalidTtl", "ttl"),
    ("stream delivery", fast(deliveryMethod="stream"), "invalidDeliveryMethod", "deliveryMethod"),
    ("webhook not http", fast(webhookURL="ftp://example.com/hook"), "invalidWebhookURL", "webhookURL"),
    ("upload not a url", fast(uploadEndpoint="not a url"), "invalidUploadEndpoint", "uploadEndpoint"),
    ("includeCost a string", fast(includeCost="yes"), "invalidIncludeCost", "includeCost"),
    ("safety.checkContent a string", fast(safety={"checkContent": "x"}), "invalidCheckContent", "safety.checkContent"),
    ("safety.mode unknown", fast(safety={"mode": "extreme"}), "invalidMode", "safety.mode"),
    ("safety unknown key", fast(safety={"level": 3}), "unsupportedParameter", "safety.level"),
    ("unknown parameter", fast(CFGScale=3), "unsupportedParameter", "CFGScale"),
    ("top-level frameImages", fast(frameImages=["abc"]), "unsupportedParameter", "frameImages"),
    ("settings on Fast", fast(settings={"audio": True}), "unsupportedParameter", "settings"),
    ("providerSettings on 2.3", ltx23(providerSettings={"lightricks": {"generateAudio": True}}), "unsupportedParameter", "providerSettings"),
    ("providerSettings not an object", fast(providerSettings="x"), "invalidProviderSettings", "providerSettings"),
    ("generateAudio a string", fast(providerSettings={"lightricks": {"generateAudio": "yes"}}), "invalidGenerateAudio", "providerSettings.lightricks.generateAudio"),
    ("unknown lightricks setting", fast(providerSettings={"lightricks": {"loop": True}}), "unsupportedParameter", "providerSettings.lightricks.loop"),
    ("other provider", fast(providerSettings={"google": {}}), "unsupportedParameter", "providerSettings.google"),
    ("settings.audio a string", ltx23(settings={"audio": "no"}), "invalidAudio", "settings.audio"),
    ("2.3 with neither size nor image", ltx23(width=DROP, height=DROP), "missingWidth", "width"),
    ("two frame images", fast(inputs={"frameImages": ["a", "b"]}), "invalidFrameImages", "inputs.frameImages"),
    ("frame image for the last frame", fast(inputs={"frameImages": [{"image": "a", "frame": "last"}]}), "invalidFrameImages", "inputs.frameImages"),
    ("frameImages not a list", fast(inputs={"frameImages": "abc"}), "invalidFrameImages", "inputs.frameImages"),
    ("empty frame image", fast(inputs={"frameImages": [""]}), "invalidFrameImages", "inputs.frameImages"),
    ("unknown input", fast(inputs={"video": "abc"}), "unsupportedParameter", "inputs.video"),
    # issue 21: inputs.audio (audio-to-video), on the guided models only
    ("audio on Fast", fast(inputs={"audio": "UklGRg=="}), "unsupportedParameter", "inputs.audio"),
    ("audio on 2.3 Fast", ltx23_fast(inputs={"audio": "UklGRg=="}), "unsupportedParameter", "inputs.audio"),
    ("audio not a string", ltx23(inputs={"audio": {"url": "x"}}), "invalidAudio", "inputs.audio"),
    ("audio empty", ltx23(inputs={"audio": " "}), "invalidAudio", "inputs.audio"),
    ("audio by an uploaded id", ltx23(inputs={"audio": "5b0a4e7c-3d1e-4f2a-9c8b-7a6d5e4f3c2b"}), "unsupportedParameter", "inputs.audio"),
    ("audio URL unsplittable", ltx2(inputs={"audio": "http://[::1/a.wav"}), "invalidAudio", "inputs.audio"),
    ("audio with the audio off", ltx23(inputs={"audio": "UklGRg=="}, settings={"audio": False}), "invalidAudio", "inputs.audio"),
    ("unreadable audio data", ltx23(inputs={"audio": "UklGRg=="}), "invalidAudio", "inputs.audio"),
    ("negative seed", fast(seed=-1), "invalidSeed", "seed"),
    ("seed a string", fast(seed="42"), "invalidSeed", "seed"),
    # issue 21: the guided parameters, on the models that take them and on those that do not
    ("steps on 2.3 Fast", ltx23_fast(steps=8), "unsupportedParameter", "steps"),
    ("negativePrompt on Fast", fast(negativePrompt="fog"), "unsupportedParameter", "negativePrompt"),
    ("steps 1", ltx23(steps=1), "invalidSteps", "steps"),
    ("steps 101", ltx2(steps=101), "invalidSteps", "steps"),
    ("steps a float", ltx23(steps=20.5), "invalidSteps", "steps"),
    ("steps a boolean", ltx2(steps=True), "invalidSteps", "steps"),
    ("CFGScale 0.5", ltx23(CFGScale=0.5), "invalidCFGScale", "CFGScale"),
    ("CFGScale 21", ltx2(CFGScale=21), "invalidCFGScale", "CFGScale"),
    ("CFGScale a string", ltx23(CFGScale="3"), "invalidCFGScale", "CFGScale"),
    ("negativePrompt empty", ltx23(negativePrompt=""), "invalidNegativePrompt", "negativePrompt"),
    ("negativePrompt too long", ltx2(negativePrompt="a" * 10001), "invalidNegativePrompt", "negativePrompt"),
    ("negativePrompt not a string", ltx2(negativePrompt=["fog"]), "invalidNegativePrompt", "negativePrompt"),
    ("routing not an object", fast(routing="eu"), "invalidRouting", "routing"),
    ("2.3 Fast 12 s at 48 fps", ltx23_fast(duration=12, fps=48), "invalidDuration", "duration"),
    ("2.3 Fast 12 s at 1440p", ltx23_fast(duration=12, width=2560, height=1440), "invalidDuration", "duration"),
    ("2.3 Fast with neither size nor image", ltx23_fast(width=DROP, height=DROP), "missingWidth", "width"),
    ("LTX-2 21 s", ltx2(duration=21), "invalidDuration", "duration"),
    ("LTX-2 off the 8-pixel grid", ltx2(width=1921), "unsupportedDimensions", "width"),
    ("LTX-2 fps 51", ltx2(fps=51), "invalidFps", "fps"),
]


@pytest.mark.parametrize("name, task, code, parameter", VIDEO_CASES, ids=[case[0] for case in VIDEO_CASES])
def test_bad_video_inference(server, name, task, code, parameter):
    status, body = server.post([task])
    assert status == 400, body
    assert "data" not in body
    (error,) = body["errors"]
    assert (error["code"], error["parameter"]) == (code, parameter), error
    assert error["taskType"] == "videoInference"
    assert error.get("taskUUID") == (task["taskUUID"] if isinstance(task.get("taskUUID"), str) else None)
    assert error["message"]


OTHER_CASES = [
    ("getResponse without taskUUID", [{"taskType": "getResponse"}], 400, "missingTaskUUID", "taskUUID"),
    ("getResponse of an unknown task", [{"taskType": "getResponse", "taskUUID": U}], 404, "taskNotFound", "taskUUID"),
    ("getTaskDetails of an unknown task", [{"taskType": "getTaskDetails", "taskUUID": U}], 404, "taskNotFound", "taskUUID"),
    ("imageUpload without image", [{"taskType": "imageUpload", "taskUUID": U}], 400, "missingImage", "image"),
    ("imageUpload of bad base64", [{"taskType": "imageUpload", "taskUUID": U, "image": "!!notbase64"}], 400, "invalidImage", "image"),
    ("imageUpload of a non-image", [{"taskType": "imageUpload", "taskUUID": U, "image": "aGVsbG8gd29ybGQ="}], 400, "invalidImage", "image"),
    ("imageUpload over the pixel limit", [{"taskType": "imageUpload", "taskUUID": U, "image": huge_png()}], 400, "invalidImage", "image"),
    ("unknown taskType", [{"taskType": "imageInference", "taskUUID": U}], 400, "invalidTaskType", "taskType"),
    ("missing taskType", [{"taskUUID": U}], 400, "missingTaskType", "taskType"),
    ("task not an object", [42], 400, "invalidRequestBody", "body"),
    ("body not an array", {"taskType": "ping"}, 400, "invalidRequestBody", "body"),
]


@pytest.mark.parametrize("name, tasks, status, code, parameter", OTHER_CASES, ids=[case[0] for case in OTHER_CASES])
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
