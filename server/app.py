"""The HTTP application, assembled: each contract's router, the operational routes and the background loops.

Generation happens in the worker processes; this process only reads and writes the task store, so it stays
responsive while a clip renders. The role (settings.role) picks the parts: `all` runs everything on one box; `api`
the contracts, media, and the loops (first-frame images, deliveries, media expiry, expired leases) without workers;
`worker` the worker pool and its watch loop, with only the health and metrics routes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from .api.auth import ApiKeys
from .api.bodies import BodyLimits
from .api.http_errors import install_error_handlers
from .api.limits import RateLimiter
from .api.playground import playground_router, static_files
from .api.runcomfy import protocol as runcomfy_protocol
from .api.runcomfy.routes import runcomfy_router
from .api.runcomfy.service import RunComfyService
from .api.runware import protocol as runware_protocol
from .api.runware.routes import SocketLimits, runware_router
from .api.runware.service import RunwareService
from .api.runware.validation import TASK_TYPE as RUNWARE_VIDEO_TASK
from .media.netguard import GuardedClient, GuardSettings
from .media.store import open_media
from .ops.loops import cleanup_loop, delivery_loop, lease_loop, prepare_loop
from .ops.routes import health_router, media_router
from .settings import Settings
from .store import open_store
from .tasks.service import TaskService
from .workers.resilience import LoopHealth
from .workers.supervisor import WorkerPool

log = logging.getLogger("ltx_runtime.server")
DELIVERY_FLUSH_SECONDS = 10
"""How long a draining server waits for the deliveries of what finished (the rest go out after the next start)."""


def create_app(settings: Settings, keys: ApiKeys | None) -> FastAPI:
    """`keys`: the API keys an API node checks (None on a worker node, which serves no contract)."""
    store = open_store(settings.store_url, settings.sqlite_busy_timeout)
    serves_api = settings.role != "worker"
    health = LoopHealth()
    pool = WorkerPool(settings, store, health) if settings.role != "api" else None
    media = open_media(settings)
    tasks = TaskService(settings, store, media)
    limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    runware = RunwareService(tasks, keys, demo=settings.demo, limiter=limiter) if serves_api else None
    webhook_bodies = {RUNWARE_VIDEO_TASK: runware.webhook_body} if serves_api else {}

    async def drain() -> None:
        """SIGTERM: refuse new tasks (readiness 503 too), let running generations finish within the grace period,
        requeue what is left, and flush pending deliveries for a while."""
        tasks.draining = True
        if pool is not None:
            await pool.drain(settings.shutdown_grace_seconds)
        if serves_api:
            deadline = time.monotonic() + DELIVERY_FLUSH_SECONDS
            while await asyncio.to_thread(store.unsent_deliveries) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            unsent = await asyncio.to_thread(store.unsent_deliveries)
            log.warning("drained; %d delivery(ies) left unsent, for the next start or another node", unsent)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loops = []
        if pool is not None:
            pool.start()  # requeues what this node's previous workers held
            loops.append(pool.watch())
        outbound = GuardedClient(GuardSettings(allow_hosts=settings.allow_hosts)) if serves_api else None
        if outbound is not None:
            store.release_claims(settings.node)  # what this node was sending or fetching when it stopped
            loops += [
                delivery_loop(settings, store, media, webhook_bodies, outbound, health),
                cleanup_loop(settings, media, store, health),
                prepare_loop(store, tasks, outbound, settings.node, health),
            ]
        if pool is None:
            loops.append(lease_loop(settings, store, health))
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
            store.close()

    app = FastAPI(title="ltx-runtime", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if serves_api:
        body_limits = BodyLimits(settings.max_body_bytes, settings.body_timeout_seconds)
        socket_limits = SocketLimits(
            settings.ws_auth_timeout_seconds, settings.ws_idle_seconds, settings.ws_messages_per_second,
            settings.ws_messages_burst,
        )  # fmt: skip
        app.include_router(runware_router(runware, body_limits, socket_limits))
        runcomfy = RunComfyService(tasks, demo=settings.demo)
        app.include_router(runcomfy_router(runcomfy, keys, body_limits, limiter))
        app.include_router(media_router(settings, store, media))
        app.include_router(playground_router(settings.demo))
        app.mount("/playground/static", static_files(), name="playground")
    app.include_router(health_router(settings, store, pool, lambda: tasks.draining, health, tasks.check_storage))
    install_error_handlers(app, runware_protocol.route_error_body,
                           {runcomfy_protocol.PATH_PREFIXES: runcomfy_protocol.route_error_body})
    app.state.store = store
    app.state.pool = pool
    app.state.drain = drain
    return app
