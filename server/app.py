"""The HTTP side: REST and WebSocket `/v1`, media, health and metrics, plus the background loops.

The transports stay thin: they authenticate (Bearer header on REST), parse JSON, call `RunwareService.handle` and
write `{"data": [...]}` / `{"errors": [...]}` back. Generation happens in the worker processes; this process only
reads and writes the task store, so it stays responsive while a clip renders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from ltx_runtime.media import OutputFormat

from .auth import ApiKeys
from .delivery import deliver_upload, deliver_webhook
from .logs import task_event
from .netguard import GuardedClient, GuardSettings
from .runware.protocol import ContractError, Reply
from .runware.service import INVALID_KEY_MESSAGE, UUID_PATTERN, RunwareService, Session, image_content_type
from .settings import Settings
from .supervisor import WorkerPool
from .tasks import SQLiteTaskStore

log = logging.getLogger("ltx_runtime.server")
MEDIA_NAME = re.compile(r"^([0-9a-f-]{36})\.(mp4|webm|mov)$")

DEMO_WARNING = "DEMO MODE: tiny random weights; every video is noise. Set up real weights and a CUDA GPU for real output."


def create_app(settings: Settings, keys: ApiKeys) -> FastAPI:
    store = SQLiteTaskStore(settings.database)
    service = RunwareService(settings, store, keys)
    pool = WorkerPool(settings, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        requeued = store.requeue_all_running(settings.max_attempts)
        if requeued:
            log.warning("requeued %d task(s) left running by the previous process", len(requeued))
        store.reset_interrupted_deliveries()
        pool.start()
        outbound = GuardedClient(GuardSettings(allow_hosts=settings.allow_hosts))
        loops = [
            asyncio.create_task(pool.watch()),
            asyncio.create_task(_delivery_loop(settings, store, service, outbound)),
            asyncio.create_task(_cleanup_loop(settings, store)),
            asyncio.create_task(_prepare_loop(store, service, outbound)),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with suppress(asyncio.CancelledError):
                    await loop
            await outbound.aclose()
            pool.stop()

    app = FastAPI(title="ltx-runtime", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1")
    async def rest(request: Request) -> JSONResponse:
        session = Session()
        try:
            tasks = json.loads(await _read_body(request, settings.max_body_bytes))
        except ContractError as error:
            return _reply(Reply(errors=[error]))
        except ValueError:
            return _reply(Reply(errors=[ContractError("invalidRequestBody", "the body is not valid JSON", parameter="body")]))
        authorization = request.headers.get("authorization", "")
        if authorization:
            scheme, _, key = authorization.partition(" ")
            session.key_id = keys.identify(key.strip()) if scheme.lower() == "bearer" else None
            if session.key_id is None:
                error = ContractError("invalidApiKey", INVALID_KEY_MESSAGE, parameter="apiKey", status=401,
                                      task_type="authentication")  # the header does what an authentication task does
                return _reply(Reply(errors=[error]))
        return _reply(await service.handle(tasks, session))

    @app.websocket("/v1")
    async def websocket(socket: WebSocket) -> None:
        await socket.accept()
        session = Session(websocket=True)
        try:
            while True:
                text = await socket.receive_text()
                try:
                    tasks = json.loads(text)
                except ValueError:
                    error = ContractError("invalidRequestBody", "the frame is not valid JSON", parameter="body")
                    await socket.send_json(Reply(errors=[error]).body())
                    continue
                # One frame per task: the auth reply must come first and alone, and a pong in a frame of its own.
                for task in tasks if isinstance(tasks, list) else [tasks]:
                    await socket.send_json((await service.handle([task], session)).body())
        except WebSocketDisconnect:
            pass

    @app.get("/media/{name}")
    async def media(name: str):
        match = MEDIA_NAME.match(name)
        found = store.result_by_video(match.group(1)) if match else None
        if found is None or found[0].file_name != name or not (settings.media_dir / name).is_file():
            return _reply(Reply(errors=[ContractError("mediaNotFound", "no such video (or its ttl has passed)", status=404)]))
        return FileResponse(settings.media_dir / name, media_type=OutputFormat(match.group(2)).content_type)

    @app.get("/images/{image_uuid}")
    async def image(image_uuid: str):
        path = settings.images_dir / image_uuid
        if not UUID_PATTERN.match(image_uuid) or not path.is_file():
            return _reply(Reply(errors=[ContractError("imageNotFound", "no such image", status=404)]))
        return FileResponse(path, media_type=image_content_type(path.read_bytes()))

    @app.get("/health/live")
    async def live() -> dict:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        workers = [w for w in store.workers() if w["worker_id"] in pool.worker_ids]
        is_ready = any(w["state"] == "ready" for w in workers)
        body = {
            "status": "ready" if is_ready else "starting",
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

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.state.store = store
    app.state.pool = pool
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ContractError("invalidRequestBody", f"the request body is larger than {limit} bytes", status=413)
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _reply(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body(), status_code=reply.http_status)


async def _delivery_loop(settings: Settings, store: SQLiteTaskStore, service: RunwareService, client) -> None:
    """Send each finished result to its webhookURL / uploadEndpoint; the outcome never changes the task's result."""

    async def deliver(delivery) -> None:
        record = store.get_by_id(delivery.task_id)
        result = record.results[delivery.index]
        if delivery.kind == "webhook":
            item = service.result_item(record, result)
            # Both shapes seen in the wild: the flat result item, and the {"data": [item]} envelope.
            outcome = await deliver_webhook(
                client, delivery.url, {"data": [item], **item}, secret=settings.webhook_secret,
                message_id=f"msg_{result.video_uuid.replace('-', '')}",  # the same id if a restart re-sends it
            )  # fmt: skip
        else:
            path = settings.media_dir / result.file_name
            content_type = OutputFormat(record.job["output_format"]).content_type
            outcome = await deliver_upload(client, delivery.url, path, content_type)
        store.finish_delivery(delivery.id, outcome.delivered, outcome.attempts, outcome.last_status, outcome.last_error)
        task_event("delivered" if outcome.delivered else "delivery_failed", record.task_uuid,
                   level=logging.INFO if outcome.delivered else logging.WARNING, kind=delivery.kind,
                   videoUUID=result.video_uuid, attempts=outcome.attempts, status=outcome.last_status,
                   error=outcome.last_error)  # fmt: skip

    running: set[asyncio.Task] = set()
    while True:
        for delivery in store.take_deliveries():
            job = asyncio.create_task(deliver(delivery))
            running.add(job)
            job.add_done_callback(running.discard)
        await asyncio.sleep(0.25)


async def _prepare_loop(store: SQLiteTaskStore, service: RunwareService, client) -> None:
    """Fetch the first-frame image URLs of new tasks, a few at a time, and queue the tasks."""
    fetching: dict[int, asyncio.Task] = {}
    while True:
        for record in store.preparing():
            if record.id not in fetching:
                fetching[record.id] = asyncio.create_task(service.prepare(record, client))
                fetching[record.id].add_done_callback(lambda _, task_id=record.id: fetching.pop(task_id, None))
        await asyncio.sleep(0.2)


def remove_expired_media(settings: Settings, store: SQLiteTaskStore, now: float) -> list[str]:
    """Delete the result files whose ttl has passed; returns their videoUUIDs."""
    expired = store.expired_files(now)
    for video_uuid, file_name in expired:
        (settings.media_dir / file_name).unlink(missing_ok=True)
        store.forget_file(video_uuid)
    return [video_uuid for video_uuid, _ in expired]


async def _cleanup_loop(settings: Settings, store: SQLiteTaskStore) -> None:
    while True:
        remove_expired_media(settings, store, time.time())
        await asyncio.sleep(5)


class _StoreCollector:
    """Prometheus metrics read from the task store at scrape time (it is the source of truth)."""

    def __init__(self, store: SQLiteTaskStore):
        self.store = store

    def collect(self):
        counts = self.store.status_counts()
        queued = GaugeMetricFamily("ltx_tasks_queued", "Tasks waiting for a worker")
        queued.add_metric([], counts.get("queued", 0))
        running = GaugeMetricFamily("ltx_tasks_running", "Tasks a worker is generating")
        running.add_metric([], counts.get("running", 0))
        finished = CounterMetricFamily("ltx_tasks_finished", "Finished tasks by outcome", labels=["outcome"])
        finished.add_metric(["succeeded"], counts.get("succeeded", 0))
        finished.add_metric(["failed"], counts.get("failed", 0))
        count, total = self.store.finished_durations()
        durations = SummaryMetricFamily(
            "ltx_task_duration_seconds", "Seconds from first claim to finish of finished tasks",
            count_value=count, sum_value=total,
        )  # fmt: skip
        yield from (queued, running, finished, durations)
