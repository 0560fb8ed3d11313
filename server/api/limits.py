"""Abuse limits shared by the contracts: token buckets for per-key task rates, per-connection frame rates and
per-address failed key checks."""

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
        if self.empty():
            return False
        self.tokens -= 1
        return True

    def empty(self) -> bool:
        """Whether no token is left now (none is taken)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return self.tokens < 1

    def wait_seconds(self) -> float:
        """How long until the next token."""
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate else float("inf")


class RateLimiter:
    """One token bucket per API key id; a rate of 0 turns the limit off."""

    def __init__(self, per_second: float, burst: int):
        self.per_second = per_second
        self.burst = burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()  # the Runware tasks run in a thread pool (server/store/threads.py)

    def refusal(self, key_id: str) -> str | None:
        """None when the key may go on; else a message saying the limit and when to retry."""
        if not self.per_second:
            return None
        with self._lock:
            bucket = self._bucket(key_id)
            if bucket.take():
                return None
        return (
            f"this API key sent more than {self.per_second:g} tasks per second (burst {self.burst}); "
            f"retry in {bucket.wait_seconds():.2f} s"
        )

    def _bucket(self, name: str) -> TokenBucket:
        """The bucket of `name`, made the most recently used (call with the lock held)."""
        bucket = self._buckets.pop(name, None) or TokenBucket(self.per_second, self.burst)
        self._buckets[name] = bucket
        if len(self._buckets) > MAX_TRACKED_KEYS:
            self._buckets.popitem(last=False)
        return bucket


class KeyCheckLimiter(RateLimiter):
    """Failed API key checks per client address: `burst` of them, then `per_second`. While an address has none left,
    no key it sends is checked at all, the right one included (a success would still tell a guesser which guess was
    right); a rate of 0 turns the limit off."""

    def refusal(self, address: str) -> str | None:
        """None when a key from `address` may be checked; else a message saying the limit and when to retry."""
        if not self.per_second:
            return None
        with self._lock:
            bucket = self._bucket(address)
            if not bucket.empty():
                return None
        return (
            f"too many failed API key checks from this address ({self.burst}, then {self.per_second:g} per second); "
            f"retry in {bucket.wait_seconds():.2f} s"
        )

    def failed(self, address: str) -> None:
        if self.per_second:
            with self._lock:
                self._bucket(address).take()
