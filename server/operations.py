"""Operational routes, the same for every contract: result media and uploaded images (API nodes), health and metrics
(every node).

Readiness depends on the node's role. A node with a worker pool (role all or worker) is ready once one of its own
workers has loaded its model. An API node is ready when the task store answers: it can accept tasks then, and they
wait in the queue until a worker takes them (a fleet that scales its workers from zero must keep accepting); the
body lists the workers the fleet has, and `/metrics` gives an autoscaler the queue depth.
"""

from __future__ import annotations

import logging
import re
import time

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from ltx_runtime.media import OutputFormat

from .service import UUID_PATTERN, image_content_type
from .settings import Settings
from .supervisor import WORKER_STALE_SECONDS, WorkerPool
from .tasks import TaskStore

log = logging.getLogger("ltx_runtime.server")

MEDIA_NAME = re.compile(r"^([0-9a-f-]{36})\.(mp4|webm|mov)$")
DEMO_WARNING = "DEMO MODE: tiny random weights; every video is noise. Set up real weights and a CUDA GPU for real output."


def media_router(settings: Settings, store: TaskStore) -> APIRouter:
    router = APIRouter()

    @router.get("/media/{name}")
    async def media(name: str):
        match = MEDIA_NAME.match(name)
        found = store.result_by_video(match.group(1)) if match else None
        if found is None or found[0].file_name != name or not (settings.media_dir / name).is_file():
            return _not_found("mediaNotFound", "no such video (or its ttl has passed)")
        return FileResponse(settings.media_dir / name, media_type=OutputFormat(match.group(2)).content_type)

    @router.get("/images/{image_uuid}")
    async def image(image_uuid: str):
        path = settings.images_dir / image_uuid
        if not UUID_PATTERN.match(image_uuid) or not path.is_file():
            return _not_found("imageNotFound", "no such image")
        return FileResponse(path, media_type=image_content_type(path.read_bytes()))

    return router


def health_router(settings: Settings, store: TaskStore, pool: WorkerPool | None) -> APIRouter:
    """Liveness, readiness (see the module's docstring) and Prometheus metrics; `pool` is None on an API node."""
    router = APIRouter()

    @router.get("/health/live")
    async def live() -> dict:
        return {"status": "live"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        try:
            known = store.workers()
        except Exception as error:  # noqa: BLE001 - a store that does not answer is the one thing to report
            log.warning("readiness: the task store did not answer: %s", error)
            return JSONResponse({"status": "store unavailable", "role": settings.role}, status_code=503)
        if pool is None:
            workers = live_workers(known, time.time())
            is_ready = True
        else:
            workers = [w for w in known if w["worker_id"] in pool.worker_ids]
            is_ready = any(w["state"] == "ready" for w in workers)
        body = {
            "status": "ready" if is_ready else "starting",
            "role": settings.role,
            "demo": settings.demo,
            "workers": [
                {k: w[k] for k in ("worker_id", "state", "detail", "memory_profile", "memory_budget")} for w in workers
            ],
        }
        if settings.demo:
            body["warning"] = DEMO_WARNING
        return JSONResponse(body, status_code=200 if is_ready else 503)

    registry = CollectorRegistry()
    registry.register(_StoreCollector(store))

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router


def _not_found(code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=404)


class _StoreCollector:
    """Prometheus metrics read from the task store at scrape time (it is the source of truth)."""

    def __init__(self, store: TaskStore):
        self.store = store

    def collect(self):
        counts = self.store.status_counts()
        queued = GaugeMetricFamily("ltx_tasks_queued", "Tasks waiting for a worker")
        queued.add_metric([], counts.get("queued", 0))
        running = GaugeMetricFamily("ltx_tasks_running", "Tasks a worker is generating")
        running.add_metric([], counts.get("running", 0))
        finished = CounterMetricFamily("ltx_tasks_finished", "Finished tasks by outcome", labels=["outcome"])
        for outcome, status in (("succeeded", "succeeded"), ("failed", "failed"), ("cancelled", "cancelled")):
            finished.add_metric([outcome], counts.get(status, 0))
        count, total = self.store.finished_durations()
        durations = SummaryMetricFamily(
            "ltx_task_duration_seconds", "Seconds from first claim to finish of finished tasks",
            count_value=count, sum_value=total,
        )  # fmt: skip
        oldest = self.store.oldest_queued_at()
        waiting = GaugeMetricFamily("ltx_oldest_queued_seconds", "How long the longest-waiting queued task has waited")
        waiting.add_metric([], max(0.0, time.time() - oldest) if oldest is not None else 0.0)
        workers = GaugeMetricFamily("ltx_workers", "Workers of the whole fleet with a live supervisor, by state",
                                    labels=["state"])  # fmt: skip
        states = [worker["state"] for worker in live_workers(self.store.workers(), time.time())]
        for state in ("starting", "ready", "failed"):
            workers.add_metric([state], states.count(state))
        yield from (queued, running, finished, durations, waiting, workers)


def live_workers(workers: list[dict], now: float) -> list[dict]:
    """The worker rows whose supervisor touched them recently (stopped workers left out)."""
    return [w for w in workers if w["state"] != "stopped" and now - w["updated_at"] < WORKER_STALE_SECONDS]
