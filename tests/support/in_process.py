"""The app in process: `create_app` as `serve` builds it, driven through httpx's ASGITransport (no socket, no
subprocess). An API node by default, in demo mode: it has no worker, so what it accepts stays queued."""

from __future__ import annotations

import asyncio

import httpx

from server.app import create_app
from server.api.auth import ApiKeys
from server.settings import Settings


def api_app(data_dir, key: str, **settings):
    """An API node's app on `data_dir` (a SQLite store there) that takes `key`; `settings` override the defaults."""
    return create_app(Settings(**{"role": "api", "data_dir": data_dir, "demo": True, **settings}), ApiKeys([key]))


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    """One request to `app`, its lifespan not started (no background loops)."""

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def submit_and_prepare(runware, store, tasks, session, task: dict, allow_host: str = "127.0.0.1") -> str:
    """Submit a videoInference `task` whose frame image is a URL, then run the API node's preparation on it (the
    image fetched from `allow_host`), as the preparing loop would; returns the task's UUID."""
    from server.media.netguard import GuardedClient, GuardSettings

    async def run() -> str:
        reply = await runware.handle([task], session)
        assert reply.data, reply.body()
        (record,) = store.take_preparing("node", 60)
        async with GuardedClient(GuardSettings(allow_hosts=(allow_host,))) as client:
            await tasks.prepare(record, client)
        return task["taskUUID"]

    return asyncio.run(run())
