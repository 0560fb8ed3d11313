"""Abuse limits shared by the contracts: token buckets for per-key task rates and per-connection frame rates."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

MAX_TRACKED_KEYS = 10_000
"""Buckets kept at most (demo mode accepts any key); the least recently used key's bucket is dropped first."""


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; each request takes one."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def wait_seconds(self) -> float:
        """How long until the next token."""
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate else float("inf")


class RateLimiter:
    """One token bucket per API key id; a rate of 0 turns the limit off."""

    def __init__(self, per_second: float, burst: int):
        self.per_second = per_second
        self.burst = burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()  # the Runware tasks run in a thread pool (server/threads.py)

    def refusal(self, key_id: str) -> str | None:
        """None when the key may go on; else a message saying the limit and when to retry."""
        if not self.per_second:
            return None
        with self._lock:
            bucket = self._buckets.pop(key_id, None) or TokenBucket(self.per_second, self.burst)
            self._buckets[key_id] = bucket
            if len(self._buckets) > MAX_TRACKED_KEYS:
                self._buckets.popitem(last=False)
            if bucket.take():
                return None
        return (
            f"this API key sent more than {self.per_second:g} tasks per second (burst {self.burst}); "
            f"retry in {bucket.wait_seconds():.2f} s"
        )
