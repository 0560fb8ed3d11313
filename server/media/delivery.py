"""Delivery of finished work to the client: signed webhooks (POST) and uploads to an uploadEndpoint (PUT).

Both go through `netguard.GuardedClient`, so every target (and every redirect hop) passes the SSRF checks.

Retry policy
------------
A delivery is tried up to `attempts` times (default 6). Any 2xx status is success. Any other status, a network
error or a timeout is retried after ``min(max_delay, base_delay * 2**n)`` seconds (n = 0 for the first retry, so
0.25, 0.5, 1, 2, 4 s by default) plus up to 10% random jitter, which keeps many deliveries from retrying in
lockstep. A refused URL (`BlockedURLError`) is final: retrying cannot make it allowed. The functions never raise;
they report a `DeliveryOutcome`.

Webhook signatures (Standard Webhooks, https://www.standardwebhooks.com)
-------------------------------------------------------------------------
Every webhook carries three headers:

- ``webhook-id``: unique per message and the same on every retry of it, so receivers can drop duplicates;
- ``webhook-timestamp``: the attempt's time in integer Unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}">``.

The secret has the form ``whsec_<base64 key>``; the HMAC key is the base64-decoded part (a secret without the
prefix is used as UTF-8 bytes). To verify, a receiver:

1. takes the raw request body bytes, before any JSON parsing;
2. rejects timestamps more than 5 minutes from its own clock (replay protection);
3. recomputes the signature and compares it in constant time with each space-separated ``v1,`` entry of
   ``webhook-signature``.

`verify_webhook` does exactly that, and the official `standardwebhooks` libraries accept these webhooks too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .netguard import BlockedURLError, FetchError, GuardedClient

Sleep = Callable[[float], Awaitable[object]]

_SECRET_PREFIX = "whsec_"


@dataclass
class DeliveryOutcome:
    delivered: bool
    attempts: int
    """Requests tried (0 when nothing could be sent, e.g. an unreadable file)."""
    last_status: int | None
    """HTTP status of the final attempt; None when it got no response."""
    last_error: str | None


def _signing_key(secret: str) -> bytes:
    if secret.startswith(_SECRET_PREFIX):
        return base64.b64decode(secret[len(_SECRET_PREFIX) :], validate=True)
    return secret.encode()


def sign_webhook(secret: str, message_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"));
    `timestamp` as the ``webhook-timestamp`` header writes it."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """True when `headers` carry a valid, fresh Standard Webhooks signature of `body` (the raw bytes received)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature")
    # ASCII digits only, of a sane length: str.isdigit() also takes "²" (which int() refuses) and "١٧٠٠" (which
    # int() reads), and int() has no use for 5,000 digits.
    if not message_id or not signatures or not re.fullmatch(r"[0-9]{1,15}", timestamp_text):
        return False
    if abs((time.time() if now is None else now) - int(timestamp_text)) > tolerance_s:
        return False
    # Signed over the header's own text, as Standard Webhooks says: a zero-padded copy of the time is not the same.
    expected = sign_webhook(secret, message_id, timestamp_text, body).encode()
    return any(hmac.compare_digest(candidate.encode(), expected) for candidate in signatures.split())


async def deliver_webhook(
    client: GuardedClient,
    url: str,
    payload: dict,
    *,
    secret: str | None,
    message_id: str | None = None,
    attempts: int = 6,
    base_delay: float = 0.25,
    max_delay: float = 8.0,
    sleep: Sleep = asyncio.sleep,
) -> DeliveryOutcome:
    """POST `payload` as compact JSON, signed when `secret` is set, retrying as the module docstring says.

    `message_id` names the message for receivers' de-duplication; pass the same one when a delivery is re-sent
    (after a restart, say). A fresh one is drawn when it is not given.
    """
    try:
        body = json.dumps(payload, separators=(",", ":")).encode()
        if secret is not None:
            _signing_key(secret)  # a malformed secret fails here, once, rather than on every attempt
    except (TypeError, ValueError) as exc:
        return DeliveryOutcome(False, 0, None, f"cannot prepare webhook: {exc}")
    message_id = message_id or "msg_" + uuid.uuid4().hex

    async def send() -> int:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            timestamp = int(time.time())
            headers["webhook-id"] = message_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign_webhook(secret, message_id, timestamp, body)
        return await client.post_json(url, body, headers)

    return await _with_retries(send, attempts, base_delay, max_delay, sleep)


async def deliver_upload(
    client: GuardedClient,
    url: str,
    path: Path,
    content_type: str,
    *,
    attempts: int = 6,
    base_delay: float = 0.25,
    max_delay: float = 8.0,
    sleep: Sleep = asyncio.sleep,
) -> DeliveryOutcome:
    """PUT the raw bytes of `path` with `content_type`, retrying as the module docstring says."""
    if not path.is_file():
        return DeliveryOutcome(False, 0, None, f"cannot upload {path.name}: not a file")
    return await _with_retries(
        lambda: client.put_bytes(url, path, content_type), attempts, base_delay, max_delay, sleep
    )


async def _with_retries(
    send: Callable[[], Awaitable[int]], attempts: int, base_delay: float, max_delay: float, sleep: Sleep
) -> DeliveryOutcome:
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            status = await send()
        except BlockedURLError as exc:
            return DeliveryOutcome(False, attempt, None, str(exc))
        except FetchError as exc:
            status, error = None, str(exc)
        except OSError as exc:  # the upload file vanished or became unreadable; retrying will not help
            return DeliveryOutcome(False, attempt, None, f"cannot read upload file: {exc.strerror or exc}")
        else:
            if 200 <= status < 300:
                return DeliveryOutcome(True, attempt, status, None)
            error = f"HTTP {status}"
        if attempt < attempts:
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            await sleep(delay * (1 + 0.1 * random.random()))
    return DeliveryOutcome(False, attempts, status, error)
