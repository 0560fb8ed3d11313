"""Operational routes, the same for every contract: result media, uploaded images, health and metrics."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from ltx_runtime.media import OutputFormat

from .service import UUID_PATTERN, image_content_type
from .settings import Settings
from .supervisor import WorkerPool
from .tasks import TaskStore

MEDIA_NAME = re.compile(r"^([0-9a-f-]{36})\.(mp4|webm|mov)$")
DEMO_WARNING = "DEMO MODE: tiny random weights; every video is noise. Set up real weights and a CUDA GPU for real output."


def operations_router(settings: Settings, store: TaskStore, pool: WorkerPool) -> APIRouter:
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

    @router.get("/health/live")
    async def live() -> dict:
        return {"status": "live"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        workers = [w for w in store.workers() if w["worker_id"] in pool.worker_ids]
        is_ready = any(w["state"] == "ready" for w in workers) and not pool.draining
        if pool.draining:
            status = "draining"
        elif is_ready:
            status = "ready"
        elif workers and all(w["state"] == "failed" for w in workers):
            status = "failed"  # every worker failed to start; the details say why
        else:
            status = "starting"
        body = {
            "status": status,
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
        yield from (queued, running, finished, durations)
