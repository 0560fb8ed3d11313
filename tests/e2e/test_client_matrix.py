"""The current Runware SDK, `runware-sdk` 1.8.0, over both transports and through a dropped WebSocket.

The legacy `runware` 0.5.24 (WebSocket) is driven in test_server.py, the RunComfy client in test_server_runcomfy.py.
runware-sdk runs in a subprocess with a folder of its own (tests/support/clients.py).
"""

from __future__ import annotations

import uuid

import pytest

from conftest import probe
from support.clients import run_sdk, runware_sdk  # noqa: F401 (a fixture)
from support.server_harness import download, server_fixture

pytestmark = pytest.mark.slow  # runware-sdk in a subprocess against a real server, seconds-long clips

server = server_fixture("server-clients")


@pytest.mark.parametrize("transport", ["websocket", "rest"])
def test_runware_sdk_1_8_0_gets_two_distinct_videos(runware_sdk, server, transport, tmp_path):
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "ltx-runtime:tiny@1",
            "positivePrompt": "a kite over a beach", "width": 512, "height": 288, "duration": 4, "fps": 25,
            "numberResults": 2, "seed": 40}  # seconds long: the SDK first polls after 1 s and must see it running
    outcome = run_sdk(runware_sdk, server, transport, task)
    results = outcome["results"]
    assert [item["status"] for item in results] == ["success", "success"]
    assert sorted(item["seed"] for item in results) == [40, 41]
    assert len({item["videoUUID"] for item in results}) == 2
    assert outcome["progress"]  # progress reached on_progress while the task ran
    info = probe(download(results[0]["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.width, info.height, info.frames) == (512, 288, 100)


def test_runware_sdk_reconnects_in_the_middle_of_a_task_and_gets_its_result(runware_sdk, server, tmp_path):
    # Long enough (several seconds on a CPU) that the connection drops while it runs.
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "ltx-runtime:tiny@1",
            "positivePrompt": "a train at night", "width": 512, "height": 288, "duration": 4, "fps": 25}
    outcome = run_sdk(runware_sdk, server, "websocket", task, "--drop-connection-at-progress", "1")
    assert outcome["dropped"]
    before, after = outcome["sessions"]
    assert before and before == after  # it resumed the same connectionSessionUUID
    (item,) = outcome["results"]
    assert item["status"] == "success" and item["taskUUID"] == task["taskUUID"]
    info = probe(download(item["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.width, info.height, info.frames) == (512, 288, 100)


def test_runware_sdk_1_8_0_gets_an_ltx_2_5_clip_and_the_duration_head_picks_its_length(runware_sdk, server, tmp_path):
    """LTX-2.5 Fast by its hosted id (demo server: tiny 2.5 weights), with no duration: the head picks it."""
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "lightricks:ltx@2.5-fast",
            "positivePrompt": "a kite over a beach", "width": 720, "height": 1280, "fps": 24}
    outcome = run_sdk(runware_sdk, server, "rest", task)
    (result,) = outcome["results"]
    assert result["status"] == "success"
    info = probe(download(result["videoURL"], tmp_path / "clip.mp4")[0])
    assert (info.width, info.height, info.fps) == (720, 1280, 24)
    assert (info.frames - 1) % 8 == 0 and 24 <= info.frames <= 20 * 24 + 1  # 8k+1 frames, 1-20 s
    assert result["duration"] == pytest.approx(info.frames / 24)  # the head's pick, in the result
    assert (info.audio_rate, info.audio_channels) == (48000, 2)


def sdk_audio_to_video(runware_sdk, server, tmp_path, model: str, width: int, height: int, duration: int, fps: int,
                       timeout: float = 300):
    """Audio-to-video through runware-sdk 1.8.0 with `inputs.audio` as a data URI (a 1 s MP3) at 2 steps: the clip
    has the asked size, frames and fps, and its audio track is the input, padded with silence to the duration."""
    import base64

    from ltx_runtime.audio_input import decode_audio
    from support.audio import audio_track, snr_db, tone

    song = tone(1, fmt="mp3")
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": model,
            "positivePrompt": "a singer on a stage", "width": width, "height": height, "duration": duration,
            "fps": fps, "steps": 2, "inputs": {"audio": "data:audio/mpeg;base64," + base64.b64encode(song).decode()}}
    outcome = run_sdk(runware_sdk, server, "rest", task, timeout=timeout)
    (result,) = outcome["results"]
    assert result["status"] == "success"
    path, _ = download(result["videoURL"], tmp_path / "clip.mp4")
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (width, height, duration * fps, fps)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert abs(info.audio_duration - duration) < 0.05
    track = audio_track(path, 48000)
    assert snr_db(decode_audio(song, 48000)[4800:43200], track[4800:43200]) > 15
    assert float(abs(track[52800:(duration * 48000) - 4800]).max()) < 0.01  # after the 1 s input: silence


def test_runware_sdk_1_8_0_gets_an_ltx_2_3_clip_generated_to_inputs_audio(runware_sdk, server, tmp_path):
    """On the LTX-2.3 recipe and fields at a small size (the tiny LTX-2.3 id)."""
    sdk_audio_to_video(runware_sdk, server, tmp_path, "ltx-runtime:tiny-ltx23@1", 256, 144, 2, 24)


def test_runware_sdk_1_8_0_gets_a_lightricks_ltx_2_3_clip_generated_to_inputs_audio(runware_sdk, server, tmp_path):
    """By the hosted id `lightricks:ltx@2.3` (demo server: tiny weights), at its smallest clip: 1920x1080, 6 s (about
    5 minutes on 2 cores)."""
    sdk_audio_to_video(runware_sdk, server, tmp_path, "lightricks:ltx@2.3", 1920, 1080, 6, 24, timeout=1200)
