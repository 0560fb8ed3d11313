"""The HTTP application, assembled: each contract's router, the operational routes and the background loops.

Generation happens in the worker processes; this process only reads and writes the task store, so it stays
responsive while a clip renders.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from .auth import ApiKeys
from .loops import cleanup_loop, delivery_loop, prepare_loop
from .netguard import GuardedClient, GuardSettings
from .operations import operations_router
from .playground import playground_router, static_files
from .runcomfy.routes import runcomfy_router
from .runcomfy.service import RunComfyService
from .runware.routes import runware_router
from .runware.service import RunwareService
from .runware.validation import TASK_TYPE as RUNWARE_VIDEO_TASK
from .service import TaskService
from .settings import Settings
from .supervisor import WorkerPool
from .tasks import SQLiteTaskStore

log = logging.getLogger("ltx_runtime.server")
DELIVERY_FLUSH_SECONDS = 10
"""How long a draining server waits for the deliveries of what finished (the rest go out after the next start)."""


def create_app(settings: Settings, keys: ApiKeys) -> FastAPI:
    store = SQLiteTaskStore(settings.database)
    tasks = TaskService(settings, store)
    runware = RunwareService(tasks, keys, demo=settings.demo)
    runcomfy = RunComfyService(tasks, demo=settings.demo)
    pool = WorkerPool(settings, store)

    async def drain() -> None:
        """SIGTERM: refuse new tasks (readiness 503 too), let running generations finish within the grace period,
        requeue what is left, and flush pending deliveries for a while."""
        tasks.draining = True
        await pool.drain(settings.shutdown_grace_seconds)
        deadline = time.monotonic() + DELIVERY_FLUSH_SECONDS
        while store.unsent_deliveries() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        log.warning("drained; %d delivery(ies) left unsent for the next start", store.unsent_deliveries())

    webhook_bodies = {RUNWARE_VIDEO_TASK: runware.webhook_body}

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
            asyncio.create_task(delivery_loop(settings, store, webhook_bodies, outbound)),
            asyncio.create_task(cleanup_loop(settings, store)),
            asyncio.create_task(prepare_loop(store, tasks, outbound)),
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
    app.include_router(runware_router(runware, keys, settings.max_body_bytes))
    app.include_router(runcomfy_router(runcomfy, keys, settings.max_body_bytes))
    app.include_router(operations_router(settings, store, pool))
    app.include_router(playground_router(settings.demo))
    app.mount("/playground/static", static_files(), name="playground")
    app.state.store = store
    app.state.pool = pool
    app.state.drain = drain
    return app
