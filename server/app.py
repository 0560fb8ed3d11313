"""The HTTP application, assembled: each contract's router, the operational routes and the background loops.

Generation happens in the worker processes; this process only reads and writes the task store, so it stays
responsive while a clip renders.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from .auth import ApiKeys
from .bodies import BodyLimits
from .http_errors import install_error_handlers
from .limits import RateLimiter
from .loops import cleanup_loop, delivery_loop, prepare_loop
from .media_store import open_media
from .netguard import GuardedClient, GuardSettings
from .operations import operations_router
from .playground import playground_router, static_files
from .runcomfy.routes import runcomfy_router
from .runcomfy.service import RunComfyService
from .runware.routes import SocketLimits, runware_router
from .runware.service import RunwareService
from .runware.validation import TASK_TYPE as RUNWARE_VIDEO_TASK
from .service import TaskService
from .settings import Settings
from .supervisor import WorkerPool
from .tasks import open_store


def create_app(settings: Settings, keys: ApiKeys) -> FastAPI:
    store = open_store(settings.store_url)
    media = open_media(settings)
    tasks = TaskService(settings, store, media)
    limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    runware = RunwareService(tasks, keys, demo=settings.demo, limiter=limiter)
    runcomfy = RunComfyService(tasks, demo=settings.demo)
    pool = WorkerPool(settings, store)
    webhook_bodies = {RUNWARE_VIDEO_TASK: runware.webhook_body}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.release_deliveries(settings.node)
        pool.start()
        outbound = GuardedClient(GuardSettings(allow_hosts=settings.allow_hosts))
        loops = [
            asyncio.create_task(pool.watch()),
            asyncio.create_task(delivery_loop(settings, store, media, webhook_bodies, outbound)),
            asyncio.create_task(cleanup_loop(media, store)),
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
            store.close()

    app = FastAPI(title="ltx-runtime", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    body_limits = BodyLimits(settings.max_body_bytes, settings.body_timeout_seconds)
    socket_limits = SocketLimits(
        settings.ws_auth_timeout_seconds, settings.ws_idle_seconds, settings.ws_messages_per_second,
        settings.ws_messages_burst,
    )  # fmt: skip
    app.include_router(runware_router(runware, keys, body_limits, socket_limits))
    app.include_router(runcomfy_router(runcomfy, keys, body_limits, limiter))
    app.include_router(operations_router(settings, store, pool, media))
    app.include_router(playground_router(settings.demo))
    app.mount("/playground/static", static_files(), name="playground")
    install_error_handlers(app)
    app.state.store = store
    app.state.pool = pool
    return app
