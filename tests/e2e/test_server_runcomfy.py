"""The RunComfy API (shared/seeds/004) on the real server, driven by a client written from the seed's curl examples."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid

import httpx
import pytest
from PIL import Image

from conftest import probe
from server.store import open_store
from support.bad_input import BAD_BODIES, SEED_PROMPT, cases_named, runcomfy_body
from support.clients import TINY_FAST, RunComfyClient
from support.server_harness import API_KEY, OTHER_KEY, download, server_fixture

server = server_fixture("server-runcomfy")


@pytest.fixture
def client(server):
    return RunComfyClient(server.base)


def submit_ok(client: RunComfyClient, model: str, body: dict, mode: str = "text-to-video") -> str:
    response = client.submit(model, body, mode)
    assert response.status_code == 200, response.text
    reply = response.json()
    request_id = reply["request_id"]
    # A demo server also warns of a clip that takes minutes on its CPU (issue 25).
    assert set(reply) - {"warning"} == {"request_id", "status_url", "result_url", "cancel_url"}
    assert reply["status_url"] == f"{client.base}/v1/requests/{request_id}/status"
    return request_id


def test_a_six_second_fast_clip_with_the_tiny_model_standing_in(client, tmp_path):
    request_id = submit_ok(client, TINY_FAST, {"prompt": SEED_PROMPT, "duration": 6, "resolution": "128x72"})
    status, seen = client.wait(request_id, {"completed", "failed"})
    assert status["status"] == "completed", status
    assert set(seen) <= {"in_queue", "in_progress", "completed"}
    result = client.result(request_id)
    assert result["status"] == "completed" and set(result["output"]) == {"video"}
    info = probe(download(result["output"]["video"], tmp_path / "clip.mp4")[0])
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 128, 72, 150, 25)
    assert info.duration == pytest.approx(6.0, abs=0.05)
    assert (info.audio_codec, info.audio_rate) == ("aac", 24000)  # generate_audio defaults to true
    assert info.audio_duration == pytest.approx(6.0, abs=0.05)


@pytest.mark.slow
def test_the_seed_request_as_written_runs_to_a_1080p_clip(client, tmp_path):
    """The seed's curl body unchanged: 1920x1080, 6 s, 25 fps, with audio, on tiny weights (minutes on a CPU)."""
    from test_server_seed_examples import json_objects, seeds_folder

    page = (seeds_folder() / "004_98b1073e5ad4562f.txt").read_text()
    body = json.loads(next(json_objects(page.split("--data '", 1)[1])))
    assert set(body) == {"prompt"} and body["prompt"].startswith(SEED_PROMPT)
    request_id = submit_ok(client, "ltx/ltx-2/fast", body)
    status, _ = client.wait(request_id, {"completed", "failed"}, timeout=1200)
    assert status["status"] == "completed", status
    info = probe(download(client.result(request_id)["output"]["video"], tmp_path / "seed.mp4")[0])
    assert (info.width, info.height, info.frames, info.fps, info.audio_codec) == (1920, 1080, 150, 25, "aac")


def png_data_uri(width=160, height=90) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 160, 90)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_image_to_video_and_pro_extensions(client, tmp_path):
    body = {"prompt": "a green field", "duration": 1, "resolution": "96x64", "fps": 25, "generate_audio": False,
            "image_url": png_data_uri(), "seed": 3}
    request_id = submit_ok(client, "ltx-runtime/tiny/pro", body, mode="image-to-video")
    status, _ = client.wait(request_id, {"completed", "failed"})
    assert status["status"] == "completed", status
    info = probe(download(client.result(request_id)["output"]["video"], tmp_path / "i2v.mp4")[0])
    assert (info.width, info.height, info.frames, info.audio_codec) == (96, 64, 25, None)


def test_cancel_a_queued_and_a_running_request(server, client):
    store = open_store(server.store_url)
    # One worker: the first request runs (long enough to be caught mid-way), the second waits behind it.
    running = submit_ok(client, TINY_FAST, {"prompt": "a long clip", "duration": 6, "resolution": "512x288"})
    queued = submit_ok(client, TINY_FAST, {"prompt": "a queued clip", "duration": 6, "resolution": "512x288"})
    after = submit_ok(client, TINY_FAST, {"prompt": "the next clip", "duration": 1, "resolution": "64x64"})
    status = client.status(after)  # `queued` waits ahead of it (and `running` too until the worker claims it)
    assert status["status"] == "in_queue" and status["queue_position"] >= 1
    assert client.status(queued)["status"] == "in_queue"

    cancelled = client.cancel(queued)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.status(queued)["status"] == "cancelled"  # at once
    assert client.result(queued)["status"] == "cancelled"

    deadline = time.time() + 120
    while time.time() < deadline and not (client.status(running).get("progress") or 0) > 0:
        time.sleep(0.05)
    progress_at_cancel = client.status(running)["progress"]
    assert client.status(running)["status"] == "in_progress" and progress_at_cancel > 0
    response = client.cancel(running)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    # The worker stops within one denoising step and takes the next request.
    status, _ = client.wait(after, {"completed", "failed"}, timeout=120)
    assert status["status"] == "completed"
    record = store.get(server_key_id(), running)
    one_step = 99 // 11 + 1  # the Fast recipe reports 11 denoising steps
    assert record.status == "cancelled" and record.results[0].progress <= progress_at_cancel + one_step
    media = [path.name for path in (server.data_dir / "media").iterdir()]
    assert not any(path.startswith(".") for path in media)  # no partial file left behind
    video_uuids = {store.get(server_key_id(), rid).results[0].video_uuid for rid in (running, queued)}
    assert not any(name.split(".")[0] in video_uuids for name in media)
    assert any("task cancelled" in line and running in line for line in server.log().splitlines())  # the worker's event

    # A finished request cannot be cancelled.
    refused = client.cancel(after)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == 409001


def server_key_id() -> str:
    from server.api.auth import key_id

    return key_id(API_KEY)


# The table runs in process (unit/test_validation_errors.py); this one goes through the real server's HTTP path.
WIRE_BODIES = cases_named(BAD_BODIES, "12 s at 1440p")


@pytest.mark.parametrize("name, fields, parameter", WIRE_BODIES, ids=[case[0] for case in WIRE_BODIES])
def test_bad_bodies_name_the_parameter(client, name, fields, parameter):
    response = client.submit("ltx/ltx-2/fast", runcomfy_body(fields))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["name"], error["parameter"]) == (400003, "InvalidParameter", parameter)
    assert error["message"]


def test_long_fast_clips_are_accepted_at_1080p_25_fps(server):
    response = RunComfyClient(server.base, OTHER_KEY).submit("ltx/ltx-2/fast", {"prompt": SEED_PROMPT, "duration": 20})
    assert response.status_code == 200, response.text
    # Not run to the end here (20 s of 1080p on a CPU); cancelled so the worker stays free.
    assert RunComfyClient(server.base, OTHER_KEY).cancel(response.json()["request_id"]).status_code == 200


def test_errors_for_keys_models_and_ids(server, client):
    unknown_model = client.submit("ltx/ltx-3/fast", {"prompt": SEED_PROMPT})
    assert unknown_model.status_code == 400 and unknown_model.json()["error"]["code"] == 400001
    image_without_url = client.submit("ltx/ltx-2/fast", {"prompt": SEED_PROMPT}, mode="image-to-video")
    assert image_without_url.json()["error"]["parameter"] == "image_url"
    no_key = httpx.post(f"{server.base}/v1/models/ltx/ltx-2/fast/text-to-video", json={"prompt": SEED_PROMPT})
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == 400004
    wrong_key = RunComfyClient(server.base, "nope").status(str(uuid.uuid4()))
    assert wrong_key["error"]["name"] == "UserAccountError"
    missing = client.http.get(f"/v1/requests/{uuid.uuid4()}/status")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404001
    not_json = client.http.post("/v1/models/ltx/ltx-2/fast/text-to-video", content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["error"]["parameter"] == "body"


def test_requests_are_scoped_to_their_key_and_api(server, client):
    earlier = submit_ok(client, TINY_FAST, {"prompt": "a dog", "duration": 1, "resolution": "64x64"})
    request_id = submit_ok(client, TINY_FAST, {"prompt": "a cat", "duration": 1, "resolution": "64x64"})
    assert RunComfyClient(server.base, OTHER_KEY).http.get(f"/v1/requests/{request_id}/status").status_code == 404
    listed = client.http.get("/v1/requests", params={"limit": 100}).json()["requests"]
    assert [item["request_id"] for item in listed[:2]] == [request_id, earlier]
    assert all(set(item) >= {"request_id", "status", "status_url"} for item in listed)
    # The Runware API on the same key does not see RunComfy requests.
    status, body = server.post([{"taskType": "getResponse", "taskUUID": request_id}])
    assert status == 404 and body["errors"][0]["code"] == "taskNotFound"
