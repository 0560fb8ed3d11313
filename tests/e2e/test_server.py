"""The real server on a loopback port, driven over real REST and WebSocket connections and the official Python SDK."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid

import urllib.request

import pytest
from PIL import Image
from websockets.sync.client import connect

from conftest import probe
from ltx_runtime.progress import STAGES
from support.server_harness import API_KEY, OTHER_KEY, download, server_fixture, video_task


server = server_fixture("server")


def png_data_uri(width=64, height=48) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- REST --------------------------------------------------------------------------------------------------------


def test_rest_submit_poll_download(server, tmp_path):
    task = video_task(includeCost=True, seed=77, providerSettings={"lightricks": {"generateAudio": True}})
    status, body = server.post([task])
    assert status == 200
    assert body == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}  # the ack only

    first = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])[1]["data"]
    assert len(first) == 1 and first[0]["status"] in ("processing", "success")
    video_uuid = first[0]["videoUUID"]  # allocated before the video exists

    (item,) = server.wait_for_results(task["taskUUID"])
    assert item["videoUUID"] == video_uuid and item["seed"] == 77
    assert item["cost"] > 0 and item["videoURL"] == f"{server.base}/media/{video_uuid}.mp4"
    assert "duration" not in item  # the request named it
    path, content_type = download(item["videoURL"], tmp_path / "clip.mp4")
    assert content_type == "video/mp4"
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (128, 72, 8, 8)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 24000, 2)


@pytest.mark.slow
def test_a_result_without_an_asked_duration_reports_the_duration_heads_pick(server, tmp_path):
    """LTX-2.5 (tiny) with no duration: the result item says how long the clip the duration head picked is, and the
    clip is that long (8k+1 frames)."""
    task = video_task(model="ltx-runtime:tiny-ltx25@1", width=96, height=64, fps=8)
    del task["duration"]
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    info = probe(download(item["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.frames - 1) % 8 == 0 and item["duration"] == pytest.approx(info.frames / 8)
    assert info.audio_duration == pytest.approx(item["duration"], abs=0.05)
    (again,) = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])[1]["data"]
    assert again["duration"] == item["duration"]  # kept with the result, not recomputed


def test_rest_authentication_task_instead_of_a_header(server):
    task = video_task()
    status, body = server.post([{"taskType": "authentication", "apiKey": API_KEY}, task], key=None)
    assert status == 200
    assert body["data"][0] == {"taskType": "authentication"}
    assert body["data"][1] == {"taskType": "videoInference", "taskUUID": task["taskUUID"]}


def test_rest_ping_and_cost_is_left_out_unless_asked(server):
    status, body = server.post([{"taskType": "ping", "ping": True}])
    assert (status, body) == (200, {"data": [{"taskType": "ping", "pong": True}]})
    task = video_task()
    server.post([task])
    (item,) = server.wait_for_results(task["taskUUID"])
    assert "cost" not in item


@pytest.mark.slow
def test_number_results_gives_distinct_seeds_and_videos(server, tmp_path):
    task = video_task(numberResults=3, seed=1000)
    server.post([task])
    items = server.wait_for_results(task["taskUUID"])
    assert [item["seed"] for item in items] == [1000, 1001, 1002]
    assert len({item["videoUUID"] for item in items}) == 3
    contents = {download(item["videoURL"], tmp_path / f"{i}.mp4")[0].read_bytes() for i, item in enumerate(items)}
    assert len(contents) == 3


@pytest.mark.slow
@pytest.mark.parametrize("output_format, content_type, codec", [("WEBM", "video/webm", "vp9"), ("MOV", "video/quicktime", "h264")])
def test_output_formats_are_served_with_their_content_type(server, tmp_path, output_format, content_type, codec):
    task = video_task(outputFormat=output_format)
    server.post([task])
    (item,) = server.wait_for_results(task["taskUUID"])
    assert item["videoURL"].endswith("." + output_format.lower())
    path, served_type = download(item["videoURL"], tmp_path / f"clip.{output_format.lower()}")
    assert served_type == content_type
    info = probe(path)
    assert info.video_codec == codec and info.audio_codec is None  # audio defaults to off for LTX-2 models


def test_duplicate_task_uuid_is_a_conflict(server):
    task = video_task()
    server.post([task])
    status, body = server.post([task])
    assert status == 400
    assert body["errors"][0]["code"] == "conflictTaskUUID"
    assert body["errors"][0]["taskUUID"] == task["taskUUID"]


def test_tasks_are_scoped_to_their_api_key(server):
    task = video_task()
    server.post([task])
    status, body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}], key=OTHER_KEY)
    assert status == 404 and body["errors"][0]["code"] == "taskNotFound"
    assert "visible only to the API key that submitted it" in body["errors"][0]["message"]
    # The same taskUUID under another key is a different task.
    status, body = server.post([task], key=OTHER_KEY)
    assert status == 200 and "errors" not in body


def test_get_task_details(server):
    task = video_task()
    server.post([task])
    server.wait_for_results(task["taskUUID"])
    status, body = server.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])
    (details,) = body["data"]
    assert details["taskType"] == "getTaskDetails" and details["taskUUID"] == task["taskUUID"]
    assert details["request"] == [task]
    assert details["response"]["data"][0]["status"] == "success"
    assert details["results"] == [{"videoUUID": details["response"]["data"][0]["videoUUID"], "status": "success",
                                   "progress": 100, "stage": None}]  # fmt: skip


@pytest.mark.slow
def test_progress_covers_the_decode_and_the_encode(server):
    """Progress moves through every stage in order; the decode and the encode (most of a CPU run) are part of it."""
    task = video_task(width=512, height=288, duration=4, fps=25)
    server.post([task])
    seen = []  # (stage, progress) while processing
    while True:
        (result,) = server.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]["data"][0]["results"]
        if result["status"] == "success":
            break
        if result["stage"] and (not seen or seen[-1] != (result["stage"], result["progress"])):
            seen.append((result["stage"], result["progress"]))
        time.sleep(0.05)
    stages = list(dict.fromkeys(stage for stage, _ in seen))
    assert stages == [stage for stage in STAGES if stage in stages]  # in order
    assert [progress for _, progress in seen] == sorted(progress for _, progress in seen) and seen[-1][1] <= 99
    decoding = [progress for stage, progress in seen if stage == "decoding"]
    assert decoding and max(decoding) - min(decoding) >= 10, seen  # the percentage moves during the decode


def test_image_upload(server, tmp_path):
    status, body = server.post([{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": png_data_uri()}])
    (item,) = body["data"]
    uuid.UUID(item["imageUUID"])
    path, content_type = download(item["imageURL"], tmp_path / "image")
    assert content_type == "image/png"
    assert Image.open(path).size == (64, 48)


def test_batch_mixes_data_and_errors(server):
    good = video_task()
    bad = video_task(fps=7)
    status, body = server.post([good, bad])
    assert status == 200
    assert body["data"] == [{"taskType": "videoInference", "taskUUID": good["taskUUID"]}]
    assert body["errors"][0]["taskUUID"] == bad["taskUUID"] and body["errors"][0]["parameter"] == "fps"


def test_metrics_and_health(server):
    with urllib.request.urlopen(server.base + "/metrics") as response:
        text = response.read().decode()
    for name in ("ltx_tasks_queued", "ltx_tasks_running", "ltx_tasks_finished_total", "ltx_task_duration_seconds_count"):
        assert name in text
    with urllib.request.urlopen(server.base + "/health/ready") as response:
        ready = json.loads(response.read())
    assert ready["status"] == "ready" and ready["demo"] is True and "noise" in ready["warning"]


# -- WebSocket ---------------------------------------------------------------------------------------------------


def ws_url(server, query="") -> str:
    return f"ws://127.0.0.1:{server.port}/v1{query}"


def test_websocket_handshake_ping_and_a_task(server):
    with connect(ws_url(server, "?sdk=js&version=1.3.2")) as socket:  # query strings are ignored
        socket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        auth = json.loads(socket.recv(timeout=10))
        (item,) = auth["data"]
        assert item["taskType"] == "authentication" and "taskUUID" not in item
        uuid.UUID(item["connectionSessionUUID"])

        socket.send(json.dumps([{"taskType": "ping", "ping": True}]))
        assert json.loads(socket.recv(timeout=10)) == {"data": [{"taskType": "ping", "pong": True}]}

        task = video_task()
        socket.send(json.dumps([task]))
        assert json.loads(socket.recv(timeout=10)) == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
        for _ in range(200):
            socket.send(json.dumps([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]))
            items = json.loads(socket.recv(timeout=10))["data"]
            if items[0]["status"] == "success":
                break
            assert items[0]["status"] == "processing" and 0 <= items[0]["progress"] <= 100
            time.sleep(0.2)
        assert items[0]["videoURL"].startswith(server.base + "/media/")


def test_websocket_rejects_a_bad_key_without_task_uuid(server):
    with connect(ws_url(server)) as socket:
        socket.send(json.dumps([{"taskType": "authentication", "apiKey": "wrong"}]))
        reply = json.loads(socket.recv(timeout=10))
        assert "data" not in reply
        (error,) = reply["errors"]
        assert error["code"] == "invalidApiKey" and error["parameter"] == "apiKey"
        assert error["taskType"] == "authentication" and "taskUUID" not in error
        socket.send(json.dumps([video_task()]))
        assert json.loads(socket.recv(timeout=10))["errors"][0]["code"] == "missingApiKey"


def test_websocket_resumes_a_connection_session_uuid(server):
    session = str(uuid.uuid4())
    with connect(ws_url(server)) as socket:
        socket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY, "connectionSessionUUID": session}]))
        assert json.loads(socket.recv(timeout=10))["data"][0]["connectionSessionUUID"] == session


# -- the official Python SDK -------------------------------------------------------------------------------------


def run_sdk(server, **request):
    from runware import IVideoInference, Runware

    async def flow():
        client = Runware(api_key=API_KEY, url=ws_url(server))
        await client.connect()
        try:
            ack = await client.videoInference(requestVideo=IVideoInference(**request))
            videos = await client.getResponse(taskUUID=ack.taskUUID, numberResults=request.get("numberResults", 1))
            return ack, videos
        finally:
            await client.disconnect()

    return asyncio.run(flow())


def test_python_sdk_video_inference_then_get_response(server, tmp_path):
    from runware.types import ILightricksProviderSettings

    ack, videos = run_sdk(
        server, positivePrompt="a lighthouse in a storm", model="ltx-runtime:tiny@1", width=136, height=72,
        duration=2, fps=12, seed=5, includeCost=True, providerSettings=ILightricksProviderSettings(generateAudio=True),
    )  # fmt: skip
    assert ack.taskType == "videoInference"
    (video,) = videos
    assert video.seed == 5 and video.cost > 0
    info = probe(download(video.videoURL, tmp_path / "sdk.mp4")[0])
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 136, 72, 24, 12)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 24000, 2)
    assert info.duration == pytest.approx(2.0, abs=0.03)


@pytest.mark.slow
def test_python_sdk_gets_each_of_several_videos_once(server):
    ack, videos = run_sdk(
        server, positivePrompt="a cat", model="ltx-runtime:tiny@1", width=128, height=64, duration=1, fps=8,
        numberResults=3,
    )  # fmt: skip
    assert len(videos) == 3
    assert len({video.videoUUID for video in videos}) == 3
    assert len({video.seed for video in videos}) == 3


@pytest.mark.slow
@pytest.mark.parametrize("frames", [["first"], ["first", "last", 4]], ids=["first frame", "keyframes"])
def test_python_sdk_with_frame_images_from_local_files(server, tmp_path, frames):
    from runware.types import IInputFrame, IVideoInputs

    Image.new("RGB", (300, 160), (250, 200, 20)).save(tmp_path / "first.jpg")  # the SDK inlines it as a data URI
    _, videos = run_sdk(
        server, positivePrompt="a yellow field", model="ltx-runtime:tiny@1", width=152, height=80, duration=1, fps=10,
        inputs=IVideoInputs(frameImages=[IInputFrame(image=str(tmp_path / "first.jpg"), frame=frame) for frame in frames]),
    )  # fmt: skip
    info = probe(download(videos[0].videoURL, tmp_path / "i2v.mp4")[0])
    assert (info.width, info.height, info.frames) == (152, 80, 10)


@pytest.mark.slow
@pytest.mark.parametrize("model, audio_setting, rate", [
    ("ltx-runtime:tiny-pro@1", {"providerSettings": {"lightricks": {"generateAudio": True}}}, 24000),
    ("ltx-runtime:tiny-ltx23@1", {}, 48000),  # settings.audio defaults to on
])
def test_guided_recipes_through_the_server(server, tmp_path, model, audio_setting, rate):
    task = video_task(model=model, width=96, height=64, duration=1, fps=9, **audio_setting)
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    info = probe(download(item["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.width, info.height, info.frames, info.audio_codec, info.audio_rate) == (96, 64, 9, "aac", rate)
