"""Issue 21's fields over the real contract: `deliveryMethod: "sync"`, `routing`, the LTX-2.3 Fast and LTX-2 models
and the guided parameters, through a real server on loopback (REST and WebSocket), and in process where a worker
must not finish the task (an API node has none)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from websockets.sync.client import connect

from conftest import probe
from server.app import create_app
from server.auth import ApiKeys
from server.settings import Settings
from server_harness import API_KEY, ServerProcess, download, video_task


@pytest.fixture(scope="module")
def server(tiny_root, tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("fields"), tiny_root, LTX_SYNC_WAIT_SECONDS="120").start()
    yield process
    process.stop()


def test_rest_sync_answers_with_the_finished_video(server, tmp_path):
    task = video_task(deliveryMethod="sync", seed=3, routing={"provider": "anything"})
    status, body = server.post([task])
    assert status == 200 and "errors" not in body
    (item,) = body["data"]
    assert (item["taskUUID"], item["status"], item["seed"]) == (task["taskUUID"], "success", 3)
    info = probe(download(item["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.width, info.height, info.frames, info.fps) == (128, 72, 8, 8)


def test_websocket_sync_answers_with_the_finished_video(server):
    task = video_task(deliveryMethod="sync", model="ltx-runtime:tiny-ltx23-fast@1", numberResults=2, seed=10)
    with connect(f"ws://127.0.0.1:{server.port}/v1") as websocket:
        websocket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        json.loads(websocket.recv(timeout=30))
        websocket.send(json.dumps([task]))
        body = json.loads(websocket.recv(timeout=120))
    assert [item["status"] for item in body["data"]] == ["success", "success"]
    assert sorted(item["seed"] for item in body["data"]) == [10, 11]


def test_ltx23_fast_and_a_guided_clip_with_steps_cfg_and_negative_prompt(server, tmp_path):
    fast = video_task(model="ltx-runtime:tiny-ltx23-fast@1", width=96, height=64, fps=12, duration=1)
    guided = video_task(model="ltx-runtime:tiny-ltx23@1", width=64, height=64, fps=9, duration=1, steps=2,
                        CFGScale=5.5, negativePrompt="fog, rain", seed=4)  # fmt: skip
    assert server.post([fast, guided])[0] == 200
    (fast_item,) = server.wait_for_results(fast["taskUUID"])
    info = probe(download(fast_item["videoURL"], tmp_path / "fast.mp4")[0])
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 12, 12)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)  # settings.audio defaults on
    (guided_item,) = server.wait_for_results(guided["taskUUID"])
    assert probe(download(guided_item["videoURL"], tmp_path / "guided.mp4")[0]).frames == 9
    details = server.post([{"taskType": "getTaskDetails", "taskUUID": guided["taskUUID"]}])[1]["data"][0]
    assert {key: details["request"][0][key] for key in ("steps", "CFGScale", "negativePrompt")} == {
        "steps": 2, "CFGScale": 5.5, "negativePrompt": "fog, rain"}


def test_sync_past_the_wait_answers_as_async_with_a_message_and_the_task_goes_on(tmp_path):
    """An API node has no worker, so the task cannot finish within the wait."""
    app = create_app(Settings(role="api", data_dir=tmp_path, demo=True, sync_wait_seconds=0.5), ApiKeys(["k"]))
    task = video_task(deliveryMethod="sync")

    async def exchange():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            headers = {"Authorization": "Bearer k"}
            submitted = await client.post("/v1", json=[task], headers=headers)
            polled = await client.post("/v1", json=[{"taskType": "getResponse", "taskUUID": task["taskUUID"]}],
                                       headers=headers)  # fmt: skip
            return submitted, polled

    submitted, polled = asyncio.run(exchange())
    assert submitted.status_code == 200
    (ack,) = submitted.json()["data"]
    assert (ack["taskType"], ack["taskUUID"]) == ("videoInference", task["taskUUID"])
    assert "videoUUID" not in ack and "status" not in ack  # the SDKs read those as results
    assert "sync wait of 0.5 s" in ack["message"] and "getResponse" in ack["message"]
    assert polled.json()["data"][0]["status"] == "processing"


def test_a_bad_delivery_method_is_refused_naming_it(tmp_path):
    app = create_app(Settings(role="api", data_dir=tmp_path, demo=True), ApiKeys(["k"]))

    async def send():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            task = video_task(deliveryMethod="stream", taskUUID=str(uuid.uuid4()))
            return await client.post("/v1", json=[task], headers={"Authorization": "Bearer k"})

    (error,) = asyncio.run(send()).json()["errors"]
    assert (error["code"], error["parameter"]) == ("invalidDeliveryMethod", "deliveryMethod")
