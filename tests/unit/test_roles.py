"""Roles (`serve --role all|api|worker`): what each node serves and runs, in process (httpx's ASGITransport), plus the
store's claims that keep several API nodes from doing the same work. The fleet itself runs in e2e/test_fleet.py, the
`serve --role` command line in e2e/test_cli.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from server.app import create_app
from server.ops.loops import lease_loop
from server.workers.resilience import LoopHealth
from server.settings import Settings
from server.store.records import WORKER_STALE_SECONDS, TaskStore, WorkerRecord, live_workers
from server.store import open_store
from support.in_process import api_app, call
from support.server_harness import prometheus_values, video_task

KEY = "roles-key"


def submit(store: TaskStore, task_uuid: str, status: str = "queued"):
    return store.submit("key", task_uuid, "videoInference", {}, {"model": "ltx-runtime:tiny@1"}, [1], status=status)


def test_an_api_node_serves_the_contract_and_is_ready_when_the_store_answers(tmp_path):
    app = api_app(tmp_path, KEY)
    assert app.state.pool is None  # no workers on an API node
    store = app.state.store
    store.worker_state("gpu-host-a-worker0", 1, "ready", "cuda:0 weights", "resident", 80 << 30)
    store.worker_state("gpu-host-b-worker0", 2, "ready", "cuda:0 weights", "resident", 80 << 30)
    store.touch_workers(["gpu-host-a-worker0"])
    with store._transaction() as db:  # host b's supervisor stopped touching its row a while ago
        db.run("UPDATE workers SET updated_at = ? WHERE worker_id = 'gpu-host-b-worker0'",
                   (time.time() - WORKER_STALE_SECONDS - 1,))  # fmt: skip

    ready = call(app, "GET", "/health/ready")
    assert ready.status_code == 200
    assert ready.json()["role"] == "api" and [w["worker_id"] for w in ready.json()["workers"]] == ["gpu-host-a-worker0"]
    answer = call(app, "POST", "/v1", json=[{"taskType": "getResponse", "taskUUID": "0" * 8}])
    assert answer.status_code == 401  # the contract's routes are here (and check the key)
    assert call(app, "GET", "/media/" + "0" * 36 + ".mp4").json()["errors"][0]["code"] == "mediaNotFound"


def test_admission_picks_the_memory_profile_per_model_for_a_worker_that_reports_auto(tmp_path):
    """An 80 GB worker on `auto` runs LTX-2.3 in `fp8` (its bf16 weights and distilled LoRA exceed the budget): the
    API node admits its 1080p clip, as the worker will run it; one forced to `resident` refuses it, naming fp8."""
    app = api_app(tmp_path, KEY)
    store = app.state.store
    task = video_task(model="lightricks:ltx@2.3", width=1920, height=1080, duration=6, fps=25)
    headers = {"Authorization": f"Bearer {KEY}"}
    store.worker_state("w-80gb", 1, "ready", "cuda:0 weights", "resident", int(79.1 * 0.92 * 2**30))
    refused = call(app, "POST", "/v1", json=[task], headers=headers).json()["errors"][0]
    assert refused["code"] == "unsupportedDimensions" and "LTX_MEMORY_PROFILE=fp8" in refused["message"]
    store.worker_state("w-80gb", 1, "ready", "cuda:0 weights", "auto", int(79.1 * 0.92 * 2**30))
    accepted = call(app, "POST", "/v1", json=[task], headers=headers)
    assert accepted.status_code == 200 and accepted.json()["data"][0]["taskUUID"] == task["taskUUID"]


def test_admission_counts_the_video_decoder_ltx_video_decoder_picks(tmp_path):
    """LTX-2.5 on a 24 GB worker: with `auto` (the diffusion decoder on a GPU) 1080p 8 s does not fit, and the
    refusal names the conv decoder, with which the same node (LTX_VIDEO_DECODER=conv) admits it."""
    task = video_task(model="lightricks:ltx@2.5-fast", width=1920, height=1080, duration=8, fps=25)
    headers = {"Authorization": f"Bearer {KEY}"}
    for decoder in ("auto", "conv"):
        (tmp_path / decoder).mkdir()
        app = api_app(tmp_path / decoder, KEY, video_decoder=decoder)
        app.state.store.worker_state("w-24gb", 1, "ready", "cuda:0 weights", "low", int(23.6 * 0.92 * 2**30))
        answer = call(app, "POST", "/v1", json=[task], headers=headers)
        if decoder == "auto":
            refused = answer.json()["errors"][0]
            assert refused["code"] == "unsupportedDimensions" and "diffusion video decoder" in refused["message"]
            assert "LTX_VIDEO_DECODER=conv" in refused["message"]
        else:
            assert answer.status_code == 200 and answer.json()["data"][0]["taskUUID"] == task["taskUUID"]


def test_a_worker_node_serves_health_and_metrics_only(tmp_path):
    app = create_app(Settings(role="worker", data_dir=tmp_path, demo=True), None)
    assert app.state.pool is not None
    assert call(app, "POST", "/v1", json=[]).status_code == 404
    assert call(app, "GET", "/media/" + "0" * 36 + ".mp4").status_code == 404
    assert call(app, "GET", "/health/live").json() == {"status": "live"}
    ready = call(app, "GET", "/health/ready")  # its own workers have not started (no lifespan here)
    assert ready.status_code == 503 and ready.json()["role"] == "worker" and ready.json()["workers"] == []
    assert "ltx_tasks_queued 0.0" in call(app, "GET", "/metrics").text


def test_metrics_give_an_autoscaler_queue_depth_age_and_live_workers(tmp_path):
    app = api_app(tmp_path, KEY)
    store = app.state.store
    submit(store, "waiting-1")
    submit(store, "waiting-2")
    with store._transaction() as db:
        db.run("UPDATE tasks SET created_at = ? WHERE task_uuid = 'waiting-1'", (time.time() - 42,))
    store.worker_state("w-ready", 1, "ready")
    store.worker_state("w-starting", 2, "starting")
    store.worker_state("w-stopped", 3, "stopped", "exit code -9")
    metrics = prometheus_values(call(app, "GET", "/metrics").text)
    assert metrics["ltx_tasks_queued"] == 2
    assert 42 <= metrics["ltx_oldest_queued_seconds"] < 60
    assert metrics['ltx_workers{state="ready"}'] == 1 and metrics['ltx_workers{state="starting"}'] == 1


@pytest.mark.parametrize("host_clock_ahead", [20 * 60, -20 * 60])
def test_live_workers_and_queue_age_are_measured_on_the_database_clock(tmp_path, monkeypatch, host_clock_ahead):
    """Heartbeats and queue times are the database's timestamps: readiness, metrics and admission compare them with
    its clock, so a host whose clock is off neither loses the fleet's workers nor misreads how long a task waited."""
    app = api_app(tmp_path, KEY)
    store = app.state.store
    submit(store, "waiting")
    with store._transaction() as db:
        db.run("UPDATE tasks SET created_at = ? WHERE task_uuid = 'waiting'", (store.now() - 42,))
    store.worker_state("w-80gb", 1, "ready", "cuda:0 weights", "resident", int(79.1 * 0.92 * 2**30))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + host_clock_ahead)
    assert [w["worker_id"] for w in call(app, "GET", "/health/ready").json()["workers"]] == ["w-80gb"]
    metrics = prometheus_values(call(app, "GET", "/metrics").text)
    assert metrics['ltx_workers{state="ready"}'] == 1 and 42 <= metrics["ltx_oldest_queued_seconds"] < 60
    task = video_task(model="lightricks:ltx@2.3", width=1920, height=1080, duration=6, fps=25)
    refused = call(app, "POST", "/v1", json=[task], headers={"Authorization": f"Bearer {KEY}"}).json()["errors"][0]
    assert refused["code"] == "unsupportedDimensions"  # the live worker's budget was checked


def test_live_workers_leaves_out_stopped_rows_and_rows_of_gone_supervisors():
    now = 1000.0
    rows = [
        WorkerRecord("fresh", 1, "ready", "", now - 1, None, None),
        WorkerRecord("stopped", 2, "stopped", "", now - 1, None, None),
        WorkerRecord("stale", 3, "ready", "", now - WORKER_STALE_SECONDS, None, None),
    ]
    assert [w.worker_id for w in live_workers(rows, now)] == ["fresh"]


def test_an_api_node_requeues_the_task_of_a_worker_whose_lease_ran_out(tmp_path):
    settings = Settings(role="api", data_dir=tmp_path, max_attempts=3)
    store = open_store(settings.store_url)
    task = submit(store, "on-a-dead-host")
    assert store.claim("gone-host-worker0", lease_seconds=0.2).id == task.id

    async def run_briefly() -> None:
        loop = asyncio.create_task(lease_loop(settings, store, LoopHealth()))
        await asyncio.sleep(1.5)
        loop.cancel()

    asyncio.run(run_briefly())
    requeued = store.get_by_id(task.id)
    assert requeued.status == "queued" and requeued.attempts == 1
    assert store.claim("live-worker0", 30).id == task.id


def test_an_api_node_starts_without_importing_torch(tmp_path):
    script = (
        "import sys\n"
        "from server.app import create_app\nfrom server.api.auth import ApiKeys\nfrom server.settings import Settings\n"
        f"create_app(Settings(role='api', data_dir={str(tmp_path)!r}), ApiKeys(['k']))\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'diffusers')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

