"""API keys: kept only as SHA-256 digests, compared in constant time; every task is scoped to its key's id."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from .limits import KeyCheckLimiter

log = logging.getLogger(__name__)
KEY_FILE = "api_key"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(key: str) -> str:
    """A stable, non-secret name for a key (the first 16 hex digits of its digest) that scopes its tasks."""
    return _digest(key).hex()[:16]


class KeyChecksThrottled(Exception):
    """Too many failed key checks from this client address; the message says when to retry."""


class ApiKeys:
    def __init__(self, keys: list[str], accept_any: bool = False, throttle: KeyCheckLimiter | None = None):
        self._digests = [_digest(key) for key in keys]
        self.accept_any = accept_any
        self.throttle = throttle or KeyCheckLimiter(0, 1)  # none given: no limit

    def identify(self, key: object, client: str | None = None) -> str | None:
        """The key's id when the key is valid, else None. `client` (the client's address) is refused with
        KeyChecksThrottled while it has failed too often, and each failure counts against it."""
        if client is not None:
            refusal = self.throttle.refusal(client)
            if refusal:
                raise KeyChecksThrottled(refusal)
        found = self._identify(key)
        if found is None and client is not None:
            self.throttle.failed(client)
        return found

    def _identify(self, key: object) -> str | None:
        if not isinstance(key, str) or not key:
            return None
        if self.accept_any:
            return key_id(key)
        digest = _digest(key)
        # Compare with every stored digest, so the time taken does not tell which one matched.
        matched = False
        for stored in self._digests:
            matched |= hmac.compare_digest(digest, stored)
        return key_id(key) if matched else None


def load_or_create_key(data_dir: Path) -> tuple[str, bool]:
    """The key kept in the data folder (created, readable by the owner only, on first start); True when new."""
    path = data_dir / KEY_FILE
    if path.is_file():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "ltx_" + secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key, True
