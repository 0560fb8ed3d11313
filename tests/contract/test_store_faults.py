"""Store and disk faults, in process (httpx's ASGITransport against the real app, a real SQLite file, real mounts and
locks): background loops that outlive a locked store, readiness that says when the store or its disk cannot be used,
507/503 instead of bare 500s, first-frame images kept once, ttls for images and task rows, the per-key limit counted in
the insert, cancelled tasks' files, and metrics that never scan the task table. The same faults against a real
`serve` with its workers are in tests/e2e/test_faults_*.py."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import tmpfs
from support import in_process
from support.in_process import call
from support.processes import hold_write_lock
from support.server_harness import video_task

KEY = "faults-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def api_app(data_dir, **settings):
    return in_process.api_app(data_dir, KEY, **settings)


def post(app, tasks: list[dict]) -> httpx.Response:
    return call(app, "POST", "/v1", json=tasks, headers=AUTH)


def noise_png(width: int, height: int) -> bytes:
    """An incompressible PNG (random pixels): its data URI is about 1.3x its size."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def fill(folder) -> None:
    """Fill the disk under `folder` to its last block."""
    with open(folder / "filler", "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass


# -- item 2: loops outlive a locked store; readiness says so --------------------------------------------------------


def test_the_loops_outlive_a_store_locked_past_its_busy_timeout_and_readiness_says_so(tmp_path):
    app = api_app(tmp_path, sqlite_busy_timeout=0.5, max_attempts=3)
    store = app.state.store
    task = store.submit("key", "on-a-dead-host", "videoInference", {}, {"model": "ltx-runtime:tiny@1"}, [1])

    async def scenario() -> dict:
        seen = {}
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node"
        ) as client:  # fmt: skip
            seen["before"] = (await client.get("/health/ready")).status_code
            holder = await asyncio.to_thread(hold_write_lock, tmp_path / "tasks.sqlite3", 4)
            await asyncio.sleep(2.5)  # each loop's round waits 0.5 s for the lock, fails, backs off
            seen["locked"] = await client.get("/health/ready")
            seen["submit"] = await client.post("/v1", json=[video_task()], headers=AUTH)
            await asyncio.to_thread(holder.wait)
            # A worker on another host took the task and died: the lease loop must still be there to requeue it.
            await asyncio.to_thread(store.claim, "gone-host/worker0", 0.2)
            started = time.monotonic()
            while (await client.get("/health/ready")).status_code != 200 and time.monotonic() - started < 40:
                await asyncio.sleep(0.2)
            seen["recovered_after"] = time.monotonic() - started
            while store.get_by_id(task.id).status != "queued" and time.monotonic() - started < 40:
                await asyncio.sleep(0.2)
        return seen

    seen = asyncio.run(scenario())
    assert seen["before"] == 200
    locked = seen["locked"]
    assert locked.status_code == 503 and locked.json()["status"] == "failing", locked.text
    assert "expired leases" in locked.json()["failing"] and "locked" in locked.json()["failing"]["expired leases"]
    submit = seen["submit"]
    assert submit.status_code == 503 and submit.json()["errors"][0]["code"] == "serviceUnavailable", submit.text
    assert seen["recovered_after"] < 40
    requeued = store.get_by_id(task.id)
    assert (requeued.status, requeued.attempts) == ("queued", 1)
    print(f"store locked 4 s (busy timeout 0.5 s): readiness 503 'failing', submit 503; ready again "
          f"{seen['recovered_after']:.1f} s after the lock ended")


# -- item 8: a full, read-only or deleted store gets 507/503, not 500s, and readiness says so -----------------------


def test_a_full_data_folder_refuses_tasks_and_uploads_with_507_and_readiness_says_so(tmp_path):
    with tmpfs(tmp_path / "data", "2m") as data_dir:
        app = api_app(data_dir)
        assert call(app, "GET", "/health/ready").status_code == 200
        fill(data_dir)
        submit = post(app, [video_task()])
        assert submit.status_code == 507, submit.text
        assert submit.json()["errors"][0]["code"] == "storageFull"
        upload = post(app, [{"taskType": "imageUpload", "taskUUID": video_task()["taskUUID"],
                             "image": data_uri(noise_png(8, 8))}])  # fmt: skip
        assert upload.status_code == 507 and upload.json()["errors"][0]["code"] == "storageFull", upload.text
        ready = call(app, "GET", "/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "storage full", ready.text
        (data_dir / "filler").unlink()
        assert post(app, [video_task()]).status_code == 200
        assert call(app, "GET", "/health/ready").status_code == 200


def test_a_read_only_data_folder_refuses_tasks_rather_than_losing_them(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    app = api_app(data_dir)
    assert post(app, [video_task()]).status_code == 200
    if subprocess.run(["mount", "--bind", str(data_dir), str(data_dir)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here; the read-only test needs root and mount(2)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(data_dir)], check=True)
        submit = post(app, [video_task()])
        assert submit.status_code == 503 and submit.json()["errors"][0]["code"] == "serviceUnavailable", submit.text
        ready = call(app, "GET", "/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "store unavailable", ready.text
        assert "Read-only file system" in ready.json()["error"]
    finally:
        subprocess.run(["umount", "-l", str(data_dir)], check=True)
    assert post(app, [video_task()]).status_code == 200


def test_a_task_database_deleted_under_the_server_is_noticed(tmp_path):
    app = api_app(tmp_path)
    first = video_task()
    assert post(app, [first]).status_code == 200
    (tmp_path / "tasks.sqlite3").unlink()  # its -wal and the open connections live on, until the next start
    submit = post(app, [video_task()])
    assert submit.status_code == 503 and submit.json()["errors"][0]["code"] == "serviceUnavailable", submit.text
    ready = call(app, "GET", "/health/ready")
    assert ready.status_code == 503 and "deleted or replaced" in ready.json()["error"], ready.text


def test_an_uploaded_image_replaced_by_junk_is_served_as_stored_not_a_500(tmp_path):
    app = api_app(tmp_path)
    upload = post(app, [{"taskType": "imageUpload", "taskUUID": video_task()["taskUUID"],
                         "image": data_uri(noise_png(8, 8))}])  # fmt: skip
    image_uuid = upload.json()["data"][0]["imageUUID"]
    (tmp_path / "images" / image_uuid).write_bytes(b"not an image at all")
    served = call(app, "GET", f"/images/{image_uuid}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content == b"not an image at all"
    missing = call(app, "GET", "/images/6f1c3e2a-1b2c-4d5e-8f90-123456789abc")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "imageNotFound"


# -- item 6: a first-frame data URI is kept once, as an image, and never echoed --------------------------------------


def test_a_first_frame_data_uri_is_stored_once_as_an_image_and_never_echoed(tmp_path):
    app = api_app(tmp_path)
    png = noise_png(600, 600)
    uri = data_uri(png)
    task = video_task(inputs={"frameImages": [{"image": uri, "frame": "first"}]})
    assert post(app, [task]).status_code == 200, "submit"
    row = app.state.store._run("SELECT request, job FROM tasks WHERE task_uuid = ?", (task["taskUUID"],))[0]
    assert len(row["request"]) + len(row["job"]) < 4000, (len(row["request"]), len(row["job"]))
    image_uuid = json.loads(row["request"])["inputs"]["frameImages"][0]["image"]
    assert json.loads(row["job"])["frame_images"][0]["image"] == image_uuid
    served = call(app, "GET", f"/images/{image_uuid}")
    assert served.status_code == 200 and served.content == png  # the one copy, as an image
    assert sorted(os.listdir(tmp_path / "images")) == [image_uuid]
    for reply in (
        post(app, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]),
        post(app, [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}]),
        post(app, [{"taskType": "listTasks"}]),
    ):
        assert reply.status_code == 200 and len(reply.content) < 8000, len(reply.content)
        assert uri[:200] not in reply.text
    details = post(app, [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}]).json()["data"][0]
    assert details["request"][0]["inputs"]["frameImages"][0]["image"] == image_uuid  # a form the contract takes
    # ... so the request as echoed can be sent again as it is (a new taskUUID)
    again = {**details["request"][0], "taskUUID": video_task()["taskUUID"]}
    assert post(app, [again]).status_code == 200
    started = time.perf_counter()
    for _ in range(20):
        post(app, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    print(f"a {len(uri) / 1e6:.1f} MB first-frame data URI: getTaskDetails {len(json.dumps(details))} bytes, "
          f"a poll {(time.perf_counter() - started) / 20 * 1000:.1f} ms (in process)")


# -- item 9: a cancelled task serves nothing it made --------------------------------------------------------------


def test_a_task_cancelled_after_one_of_two_results_serves_neither(tmp_path):
    app = api_app(tmp_path)
    store = app.state.store
    task = video_task(numberResults=2, webhookURL="https://example.com/hook")
    assert post(app, [task]).status_code == 200
    claimed = store.claim("host/worker0", 30)
    first = claimed.results[0]
    name = f"{first.video_uuid}.mp4"
    (tmp_path / "media").mkdir(exist_ok=True)
    (tmp_path / "media" / name).write_bytes(b"a finished video")
    store.complete_result(claimed.id, "host/worker0", 0, name, 1.0, 0.0, time.time() + 3600,
                          [("webhook", "https://example.com/hook")])  # fmt: skip
    assert call(app, "GET", f"/media/{name}").status_code == 200
    cancelled = post(app, [{"taskType": "cancelTask", "taskUUID": task["taskUUID"]}])
    assert cancelled.status_code == 200, cancelled.text
    assert call(app, "GET", f"/media/{name}").status_code == 404
    assert not (tmp_path / "media" / name).exists()
    (delivery,) = store.deliveries_of(claimed.id)
    assert (delivery.state, delivery.last_error) == ("failed", "the task was cancelled")  # never sent after the cancel
    reply = post(app, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()
    assert reply["errors"][0]["code"] == "taskCancelled" and "data" not in reply
