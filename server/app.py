"""The HTTP application, assembled: each contract's router, the operational routes and the background loops.

Generation happens in the worker processes; this process only reads and writes the task store, so it stays
responsive while a clip renders. The role (settings.role) picks the parts: `all` runs everything on one box; `api`
the contracts, media, and the loops (first-frame images, deliveries, media expiry, expired leases) without workers;
`worker` the worker pool and its watch loop, with only the health and metrics routes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from .auth import ApiKeys
from .loops import cleanup_loop, delivery_loop, lease_loop, prepare_loop
from .netguard import GuardedClient, GuardSettings
from .operations import health_router, media_router
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


def create_app(settings: Settings, keys: ApiKeys | None) -> FastAPI:
    """`keys`: the API keys an API node checks (None on a worker node, which serves no contract)."""
    store = SQLiteTaskStore(settings.database)
    serves_api = settings.role != "worker"
    pool = WorkerPool(settings, store) if settings.role != "api" else None
    tasks = TaskService(settings, store)
    runware = RunwareService(tasks, keys, demo=settings.demo) if serves_api else None
    webhook_bodies = {RUNWARE_VIDEO_TASK: runware.webhook_body} if serves_api else {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.role == "all":  # one box: whatever was running or being sent belonged to the previous process
            requeued = store.requeue_all_running(settings.max_attempts)
            if requeued:
                log.warning("requeued %d task(s) left running by the previous process", len(requeued))
            store.reset_interrupted_deliveries()
        loops = []
        if pool is not None:
            pool.start()
            loops.append(pool.watch())
        outbound = GuardedClient(GuardSettings(allow_hosts=settings.allow_hosts)) if serves_api else None
        if outbound is not None:
            node = f"{socket.gethostname()}-{os.getpid()}"
            loops += [
                delivery_loop(settings, store, webhook_bodies, outbound),
                cleanup_loop(settings, store),
                prepare_loop(store, tasks, outbound, node),
            ]
        if pool is None:
            loops.append(lease_loop(settings, store))
        running = [asyncio.create_task(loop) for loop in loops]
        try:
            yield
        finally:
            for loop in running:
                loop.cancel()
            for loop in running:
                with suppress(asyncio.CancelledError):
                    await loop
            if outbound is not None:
                await outbound.aclose()
            if pool is not None:
                pool.stop()

    app = FastAPI(title="ltx-runtime", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if serves_api:
        app.include_router(runware_router(runware, keys, settings.max_body_bytes))
        app.include_router(runcomfy_router(RunComfyService(tasks, demo=settings.demo), keys, settings.max_body_bytes))
        app.include_router(media_router(settings, store))
        app.include_router(playground_router(settings.demo))
        app.mount("/playground/static", static_files(), name="playground")
    app.include_router(health_router(settings, store, pool))
    app.state.store = store
    app.state.pool = pool
    return app
