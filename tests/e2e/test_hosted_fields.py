"""Issue 21's fields over the real contract: `deliveryMethod: "sync"`, `routing`, the LTX-2.3 Fast and LTX-2 models
and the guided parameters, through a real server on loopback (REST and WebSocket). In process, where a worker must not finish the task (an API
node has none): unit/test_delivery_method.py."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from websockets.sync.client import connect

from conftest import probe
from conftest import read_frames
from ltx_runtime.tiny import build_tiny_lora
from support.server_harness import API_KEY, ServerProcess, download, video_task
from support.clients import run_sdk, runware_sdk  # noqa: F401 (a fixture)


LORAS = {"kite-style": {"file": "kite-style.safetensors", "architecture": "ltx-2.3"},
         "old-style": {"file": "old-style.safetensors", "architecture": "ltx-2"}}


@pytest.fixture(scope="module")
def server(tiny_root, tmp_path_factory):
    """A demo server whose operator lists two LoRAs (files in the tiny weights' loras/ folder, built here)."""
    build_tiny_lora(tiny_root / "ltx-2.3", tiny_root / "loras" / "kite-style.safetensors", seed=11)
    build_tiny_lora(tiny_root / "ltx-2", tiny_root / "loras" / "old-style.safetensors", seed=12)
    process = ServerProcess(tmp_path_factory.mktemp("fields"), tiny_root, LTX_SYNC_WAIT_SECONDS="120",
                            LTX_LORAS=json.dumps(LORAS)).start()  # fmt: skip
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
    generation = details["generation"]
    assert (generation["steps"], generation["cfg_scale"], generation["negative_prompt"]) == (2, 5.5, "fog, rain")
    assert generation["loras"] is None


def test_a_lora_task_between_two_plain_ones_over_rest(server, tmp_path):
    """Three tasks on the one demo worker: plain, with a LoRA, plain again; the LoRA changes the clip, and it does not
    reach the task after it."""
    base = dict(model="ltx-runtime:tiny-ltx23-fast@1", width=64, height=64, fps=9, duration=1, seed=21)
    tasks = [video_task(**base), video_task(**base, lora=[{"model": "kite-style", "weight": 1.0}]), video_task(**base)]
    frames = []
    for task in tasks:  # one after the other, so that they run in this order
        assert server.post([task])[0] == 200
        (item,) = server.wait_for_results(task["taskUUID"])
        frames.append(read_frames(download(item["videoURL"], tmp_path / f"{len(frames)}.mp4")[0]))
    plain, styled, plain_again = frames
    assert not np.array_equal(plain, styled) and np.array_equal(plain, plain_again)


def test_bad_loras_get_an_error_before_the_ack_over_websocket(server):
    bad = [
        (video_task(model="ltx-runtime:tiny-ltx23-fast@1", lora=[{"model": "nobody"}]), "unknown LoRA"),
        (video_task(model="ltx-runtime:tiny-ltx23-fast@1", lora=[{"model": "old-style"}]), "LoRA for ltx-2 models"),
        (video_task(model="ltx-runtime:tiny-ltx23@1", lora=[{"model": "kite-style", "weight": -9}]), "weight"),
        (video_task(lora=[{"model": "kite-style"}]), "lora is not a parameter"),  # the LTX-2 Fast stand-in
    ]
    with connect(f"ws://127.0.0.1:{server.port}/v1") as websocket:
        websocket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        json.loads(websocket.recv(timeout=30))
        for task, words in bad:
            websocket.send(json.dumps([task]))
            body = json.loads(websocket.recv(timeout=30))
            assert "data" not in body or not body["data"], body
            (error,) = body["errors"]
            assert error["parameter"].startswith("lora") and words in error["message"], error
            assert error["taskUUID"] == task["taskUUID"]
    status, body = server.post([{"taskType": "getResponse", "taskUUID": bad[0][0]["taskUUID"]}])
    assert body["errors"][0]["code"] == "taskNotFound"  # never accepted


@pytest.mark.slow
def test_runware_sdk_1_8_0_gets_an_ltx23_fast_clip_with_a_lora(runware_sdk, server, tmp_path):  # noqa: F811
    """The SDK unchanged, on LTX-2.3 Fast's tiny stand-in (the hosted id's smallest clip, 1080p for 6 s, takes over
    five minutes on a shared 2-core CPU; the hosted id's fields are the stand-in's, test_catalog checks)."""
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "ltx-runtime:tiny-ltx23-fast@1",
            "positivePrompt": "a kite over a beach", "width": 256, "height": 144, "duration": 2, "fps": 24,
            "seed": 8, "lora": [{"model": "kite-style", "weight": 0.8}]}  # fmt: skip
    outcome = run_sdk(runware_sdk, server, "rest", task)
    (item,) = outcome["results"]
    assert (item["status"], item["seed"]) == ("success", 8)
    info = probe(download(item["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.width, info.height, info.frames, info.fps) == (256, 144, 48, 24)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
