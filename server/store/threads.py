"""Where async code calls the synchronous task store: in a small pool of threads, never on the event loop.

A store call can wait (SQLite's write lock while a worker commits, a Postgres round trip); on the event loop that wait
would stall every client. The pool is small and the requests' own: SQLite lets one writer in at a time, and with more
than one thread a read still passes a write that waits for the lock. (The background loops use asyncio's executor.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

STORE_THREADS = 4
Result = TypeVar("Result")
_store_threads = anyio.CapacityLimiter(STORE_THREADS)


async def in_thread(function: Callable[..., Result], *args) -> Result:
    """`function(*args)` in one of the store's threads."""
    return await anyio.to_thread.run_sync(function, *args, limiter=_store_threads)
