"""Background loops that outlive a failing store or disk: each round that raises is logged, the loop backs off and
tries again; readiness reports the loops whose last round failed.

A task store locked past its busy timeout, a full disk under the SQLite file or a Postgres restart raise from any
store call. Before, such an error ended the loop's asyncio task (or the worker process) for good, silently, while
readiness still said ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("ltx_runtime.server")

BACKOFF_SECONDS = (1, 2, 5, 10, 30)
"""The waits after a loop's first, second... consecutive failed round."""


def backoff(failures: int) -> float:
    """The wait after `failures` consecutive failures (1 or more)."""
    return BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS)) - 1]


class LoopHealth:
    """Which loops' last round failed, since when and why (readiness reports them)."""

    def __init__(self) -> None:
        self.failing: dict[str, tuple[float, str]] = {}

    def failed(self, name: str, error: BaseException) -> None:
        since = self.failing.get(name, (time.time(), ""))[0]
        self.failing[name] = (since, f"{type(error).__name__}: {error}")

    def recovered(self, name: str) -> None:
        self.failing.pop(name, None)

    def problems(self) -> dict[str, str]:
        """{loop: "error (for N s)"} of the loops failing now."""
        now = time.time()
        return {name: f"{error} (for {now - since:.0f} s)" for name, (since, error) in self.failing.items()}


async def run_forever(name: str, round_: Callable[[], Awaitable[None]], interval: float, health: LoopHealth) -> None:
    """`await round_()` every `interval` seconds until cancelled; a round that raises is logged (with its traceback
    the first time), marks the loop failing and is retried after a growing back-off."""
    failures = 0
    while True:
        try:
            await round_()
        except Exception as error:  # noqa: BLE001 - the loop must outlive any error of one round
            failures += 1
            health.failed(name, error)
            delay = backoff(failures)
            log.warning("%s: a round failed (%d in a row), retrying in %.0f s: %s: %s", name, failures, delay,
                        type(error).__name__, error, exc_info=failures == 1)  # fmt: skip
            await asyncio.sleep(delay)
            continue
        if failures:
            log.warning("%s: working again after %d failed round(s)", name, failures)
            failures = 0
            health.recovered(name)
        await asyncio.sleep(interval)


def log_failure(name: str) -> Callable[[asyncio.Task], None]:
    """A done-callback for a fire-and-forget task: its exception is logged, not lost."""

    def check(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.warning("%s failed: %s: %s", name, type(error).__name__, error, exc_info=error)

    return check
