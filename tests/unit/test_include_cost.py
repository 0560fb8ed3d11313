"""`includeCost`, in process: the validated field the task's job keeps (`VideoJob.include_cost`) is what decides
whether a result item carries its cost, not the raw request read again; and it survives the job's rewrite once its
frame image URL is fetched."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from support.in_process import api_app, call, submit_and_prepare
from support.loopback import LoopbackServer, RecordingHandler, serving
from support.server_harness import video_task

from server.api.auth import ApiKeys, key_id
from server.api.runware.service import RunwareService, Session
from server.api.runware.validation import VideoJob
from server.media.store import open_media
from server.settings import Settings
from server.store import open_store
from server.tasks.service import TaskService

KEY = "include-cost-key"
COST = 0.25


def finish(store, task_id: int) -> None:
    """A worker's part: claim the task and record its one result, at COST."""
    claimed = store.claim("worker", 60)
    assert claimed.id == task_id
    store.complete_result(task_id, "worker", 0, "result.mp4", 1.0, COST, store.now() + 60, [])


@pytest.mark.parametrize("include_cost", [True, False, None])
def test_a_result_carries_its_cost_as_the_job_says(tmp_path, include_cost):
    app = api_app(tmp_path, KEY)
    store = app.state.store
    task = video_task() if include_cost is None else video_task(includeCost=include_cost)
    headers = {"Authorization": f"Bearer {KEY}"}
    assert call(app, "POST", "/v1", json=[task], headers=headers).status_code == 200
    record = store.get(key_id(KEY), task["taskUUID"])
    assert record.job["include_cost"] is bool(include_cost)
    finish(store, record.id)
    # The request as sent says the opposite now: what is read is the job's field.
    with store._transaction() as db:
        db.run("UPDATE tasks SET request = ? WHERE id = ?", (json.dumps({**task, "includeCost": not include_cost}),
                                                             record.id))  # fmt: skip
    polled = call(app, "POST", "/v1", json=[{"taskType": "getResponse", "taskUUID": task["taskUUID"]}], headers=headers)
    (item,) = polled.json()["data"]
    assert item["status"] == "success"
    assert item.get("cost") == (COST if include_cost else None) and ("cost" in item) is bool(include_cost)


class _ImageHost(RecordingHandler):
    def respond(self, url) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (128, 72), "red").save(buffer, format="PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(buffer.getvalue())))
        self.end_headers()
        self.wfile.write(buffer.getvalue())


def test_include_cost_is_kept_when_the_job_is_stored_again_with_its_fetched_image(tmp_path):
    settings = Settings(role="api", data_dir=tmp_path, demo=True)
    store = open_store(settings.store_url)
    tasks = TaskService(settings, store, open_media(settings))
    runware = RunwareService(tasks, ApiKeys([KEY]), demo=True)

    with serving(LoopbackServer(_ImageHost)) as host:
        task = video_task(includeCost=True, inputs={"frameImages": [host.url("/first.png")]})
        task_uuid = submit_and_prepare(runware, store, tasks, Session(key_id=key_id(KEY)), task)
    record = store.get(key_id(KEY), task_uuid)
    assert record.status == "queued" and "file" in record.job["frame_images"][0]  # the job was stored again
    assert VideoJob.from_record(record).include_cost is True
    finish(store, record.id)
    assert runware.result_item(store.get_by_id(record.id), store.get_by_id(record.id).results[0])["cost"] == COST
    store.close()
