"""Where async code calls the synchronous task store: in a small pool of threads, never on the event loop.

A store call can wait (SQLite's write lock while a worker commits, a Postgres round trip); on the event loop that wait
would stall every client. A few threads are enough: SQLite lets one writer in at a time, and more threads only add
switching and GIL hand-offs (measured in docs/performance.md, "The API under load").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

STORE_THREADS = int(os.environ.get("LTX_STORE_THREADS", "4"))
Result = TypeVar("Result")
_limiter: anyio.CapacityLimiter | None = None


async def in_thread(function: Callable[..., Result], *args) -> Result:
    """`function(*args)` in one of the store's threads."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(STORE_THREADS)
    return await anyio.to_thread.run_sync(function, *args, limiter=_limiter)
