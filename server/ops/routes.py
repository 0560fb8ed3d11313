"""Operational routes, the same for every contract: result media and uploaded images (API nodes), health and metrics
(every node).

With the local media store `/media/...` and `/images/...` stream the files. With S3 they answer 307 with a presigned
URL of the object (valid for the rest of the result's ttl, or `IMAGE_URL_SECONDS`): the bytes go from the bucket to
the client and never through this server, which stays free for the API, and range requests and caching are S3's. The
videoURLs handed out are presigned already; these routes serve links made before the switch, and the playground.

Readiness depends on the node's role. A node with a worker pool (role all or worker) is ready once one of its own
workers has loaded its model. An API node is ready when the task store answers: it can accept tasks then, and they
wait in the queue until a worker takes them (a fleet that scales its workers from zero must keep accepting); the
body lists the workers the fleet has, and `/metrics` gives an autoscaler the queue depth.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from ltx_runtime.media import OutputFormat

from ..media.store import LocalMediaStore, MediaStore, disk_full, image_key, media_key
from ..settings import Settings
from ..store.records import TaskStatus, TaskStore, live_workers
from ..store.threads import in_thread
from ..tasks.service import UUID_PATTERN, image_content_type
from ..workers.resilience import LoopHealth
from ..workers.supervisor import WorkerPool

log = logging.getLogger("ltx_runtime.server")

MEDIA_NAME = re.compile(r"^([0-9a-f-]{36})\.(mp4|webm|mov)$")
IMAGE_URL_SECONDS = 600
"""How long the presigned URL an /images redirect points to is valid (the client follows it at once)."""
DEMO_WARNING = "DEMO MODE: tiny random weights; every video is noise. Set up real weights and a CUDA GPU for real output."


def media_router(settings: Settings, store: TaskStore, media: MediaStore) -> APIRouter:
    router = APIRouter()

    @router.get("/media/{name}")
    async def media_file(name: str):
        match = MEDIA_NAME.fullmatch(name)  # checked before the name reaches the store
        found = await in_thread(store.result_by_video, match.group(1)) if match else None
        gone = _not_found("mediaNotFound", "no such video (or its ttl has passed)")
        if found is None or found[0].file_name != name:
            return gone
        if isinstance(media, LocalMediaStore):
            path = media.path(media_key(name))
            return FileResponse(path, media_type=OutputFormat(match.group(2)).content_type) if path.is_file() else gone
        lifetime = found[1] - await in_thread(store.now)  # the ttl ends on the database's clock, as it began
        return RedirectResponse(media.url(media_key(name), lifetime), status_code=307)

    @router.get("/images/{image_uuid}")
    async def image(image_uuid: str):
        missing = _not_found("imageNotFound", "no such image")
        if not UUID_PATTERN.fullmatch(image_uuid):  # checked before the name reaches the store
            return missing
        stored = await in_thread(store.image, image_uuid)
        if stored is None:
            return missing
        name = image_key(stored.file_name)
        if isinstance(media, LocalMediaStore):
            path = media.path(name)
            if not path.is_file():
                return missing
            # The type recorded when it was stored: the file is not opened as an image here (one replaced by junk
            # is served as what it claims, never a 500).
            return FileResponse(path, media_type=stored.content_type or _sniffed_type(path))
        if not await asyncio.to_thread(media.exists, name):
            return missing
        return RedirectResponse(media.url(name, IMAGE_URL_SECONDS), status_code=307)

    return router


def health_router(settings: Settings, store: TaskStore, pool: WorkerPool | None, draining: Callable[[], bool],
                  health: LoopHealth, check_storage: Callable[[], None]) -> APIRouter:  # fmt: skip
    """Liveness, readiness (see the module's docstring; 503 "draining" once a SIGTERM has started the drain; 503
    "storage full" or "store unavailable" when `check_storage` fails; 503 "failing" while a background loop's rounds
    fail) and Prometheus metrics; `pool` is None on an API node."""
    router = APIRouter()

    @router.get("/health/live")
    async def live() -> dict:
        return {"status": "live"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        try:
            await in_thread(check_storage)
            known = await in_thread(store.workers)
            now = await in_thread(store.now)  # the clock the workers' heartbeats are on
        except Exception as error:  # noqa: BLE001 - a store or disk that cannot be used is the one thing to report
            log.warning("readiness: %s: %s", type(error).__name__, error)
            status = "storage full" if disk_full(error) else "store unavailable"
            body = {"status": status, "role": settings.role, "error": f"{type(error).__name__}: {error}"}
            return JSONResponse(body, status_code=503)
        failing = health.problems()
        if pool is None:
            workers = live_workers(known, now)
            is_ready = True
        else:
            workers = [w for w in known if w.worker_id in pool.worker_ids]
            alive = pool.live_worker_ids  # a worker that died may still have a "ready" row
            is_ready = any(w.state == "ready" and w.worker_id in alive for w in workers)
        if draining():
            status, is_ready = "draining", False
        elif failing:
            status, is_ready = "failing", False  # e.g. the store locked past its busy timeout: nothing moves
        elif is_ready:
            status = "ready"
        elif workers and all(w.state == "failed" for w in workers):
            status = "failed"  # every worker failed to start; the details say why
        else:
            status = "starting"
        body = {
            "status": status,
            "role": settings.role,
            "demo": settings.demo,
            "workers": [
                {"worker_id": w.worker_id, "state": w.state, "detail": w.detail, "memory_profile": w.memory_profile,
                 "memory_budget": w.memory_budget} for w in workers
            ],  # fmt: skip
        }
        if failing:
            body["failing"] = failing
        if settings.demo:
            body["warning"] = DEMO_WARNING
        return JSONResponse(body, status_code=200 if is_ready else 503)

    registry = CollectorRegistry()
    registry.register(_StoreCollector(store))

    @router.get("/metrics")
    async def metrics() -> Response:
        body = await in_thread(generate_latest, registry)  # the collector reads the store
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return router


def _sniffed_type(path) -> str:
    try:
        return image_content_type(path.read_bytes())
    except Exception:  # noqa: BLE001 - not an image (any more): served as bytes
        return "application/octet-stream"


def _not_found(code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=404)


class _StoreCollector:
    """Prometheus metrics read from the task store at scrape time (it is the source of truth): the gauges from an index
    range over the unfinished tasks, the counters from `task_totals`; a scrape never scans the task table."""

    def __init__(self, store: TaskStore):
        self.store = store

    def collect(self):
        counts = self.store.status_counts()
        queued = GaugeMetricFamily("ltx_tasks_queued", "Tasks waiting for a worker")
        queued.add_metric([], counts.get(TaskStatus.QUEUED, 0))
        running = GaugeMetricFamily("ltx_tasks_running", "Tasks a worker is generating")
        running.add_metric([], counts.get(TaskStatus.RUNNING, 0))
        finished = CounterMetricFamily("ltx_tasks_finished", "Finished tasks by outcome", labels=["outcome"])
        for outcome in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED):
            finished.add_metric([outcome], counts.get(outcome, 0))
        count, total = self.store.finished_durations()
        durations = SummaryMetricFamily(
            "ltx_task_duration_seconds", "Seconds from first claim to finish of finished tasks",
            count_value=count, sum_value=total,
        )  # fmt: skip
        now = self.store.now()  # the clock of the store's timestamps
        oldest = self.store.oldest_queued_at()
        waiting = GaugeMetricFamily("ltx_oldest_queued_seconds", "How long the longest-waiting queued task has waited")
        waiting.add_metric([], max(0.0, now - oldest) if oldest is not None else 0.0)
        workers = GaugeMetricFamily("ltx_workers", "Workers of the whole fleet with a live supervisor, by state",
                                    labels=["state"])  # fmt: skip
        states = [worker.state for worker in live_workers(self.store.workers(), now)]
        for state in ("starting", "ready", "failed"):
            workers.add_metric([state], states.count(state))
        yield from (queued, running, finished, durations, waiting, workers)
