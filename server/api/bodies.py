"""Reading and parsing request bodies with size, time and shape limits, for every contract's routes."""

from __future__ import annotations

import asyncio
import json
import math
import reprlib
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import Request

MAX_DEPTH = 32
"""JSON nested deeper than this is refused (real tasks nest 4 levels); it would exhaust recursion further on."""
MAX_DIGITS = 100
"""Integers with more digits are refused (Python's int parsing is quadratic in the digits)."""
MAX_VALUES = 200_000
"""A body or frame that may hold more JSON values is refused before it is parsed: 20 MB of `[{},{},...]` is seven
million objects, a gigabyte and seconds of parsing. The count is an upper bound read in one pass over the bytes (each
value but the first follows a comma or opens a container), so commas and brackets inside strings count too; real
tasks hold a few dozen values, and a prompt of 10,000 characters at most."""
PEEK_BYTES = 64 * 1024
"""How much of a body or frame is read for its first task, the one that authenticates, before the key is checked
(an authentication task is a hundred bytes)."""
IN_THREAD_BYTES = 256 * 1024
"""Larger bodies are parsed in a worker thread, so that the event loop keeps answering other clients meanwhile."""


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    seconds: float
    """The time the whole body may take to arrive once the headers are in."""


CLOSE_CONNECTION = {"Connection": "close"}
"""Headers of a refusal sent before the whole body was read: the rest of it is never read, so the connection closes
(otherwise it stays open, fed by the slow client)."""


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than {limit} bytes")


class BodyTimeout(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"the request body did not arrive within {seconds:g} seconds")


class InvalidJSON(ValueError):
    """A body or frame that is not JSON this server takes; the message says why."""


def says_json(request: Request) -> bool:
    """Whether the request's Content-Type is JSON (application/json or a +json type), or it sends none, as scripts
    may. A browser sends a cross-site form or text/plain POST without asking the server first (a CORS "simple
    request"), always with one of the form types or text/plain: those are refused."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


NOT_JSON_MESSAGE = "the body must be JSON, sent with Content-Type: application/json"


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The body, refused (BodyTooLarge) as soon as its declared or received size passes the limit, or (BodyTimeout)
    when it has not fully arrived in time: a body that trickles in must not hold a connection for ever."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise BodyTooLarge(limits.max_bytes)
    body = bytearray()
    try:
        async with asyncio.timeout(limits.seconds):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limits.max_bytes:
                    raise BodyTooLarge(limits.max_bytes)
    except TimeoutError:
        raise BodyTimeout(limits.seconds) from None
    return bytes(body)


def first_task(data: bytes | str) -> Any:
    """The first task of a body or frame, read from its first PEEK_BYTES only with the same strict rules: the first
    element of its array, or the object itself. None when no complete JSON value starts there (the rest is not
    parsed: the key is checked before it is)."""
    prefix = data[:PEEK_BYTES]
    text = prefix.decode("utf-8", "replace") if isinstance(prefix, bytes) else prefix
    text = text.lstrip(" \t\r\n")
    if text.startswith("["):
        text = text[1:].lstrip(" \t\r\n")
    try:
        value, _ = _STRICT.raw_decode(text)
        _check_strings_and_depth(value)
    except (ValueError, RecursionError):  # InvalidJSON is a ValueError
        return None
    return value


async def parse_large_json(data: bytes | str, what: str = "the body") -> Any:
    """`parse_json` for a whole body or frame: refused unparsed when it may hold more than MAX_VALUES values, parsed
    in a thread when it is large."""
    values = 1 + sum(data.count(mark) for mark in ((b",", b"[", b"{") if isinstance(data, bytes) else (",", "[", "{")))
    if values > MAX_VALUES:
        raise InvalidJSON(f"{what} may hold more than {MAX_VALUES} JSON values (commas and brackets counted, in strings "
                          "too); send fewer tasks at once")  # fmt: skip
    if len(data) <= IN_THREAD_BYTES:
        return parse_json(data, what)
    return await anyio.to_thread.run_sync(parse_json, data, what)


def parse_json(data: bytes | str, what: str = "the body") -> Any:
    """Strict JSON: no NaN or Infinity, no duplicate keys, no lone surrogates, at most MAX_DEPTH levels, integers
    of at most MAX_DIGITS digits. Anything else raises InvalidJSON (`what` names the data in its message)."""
    try:
        value = json.loads(data, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float,
                           parse_int=_int)  # fmt: skip
    except RecursionError:
        raise InvalidJSON(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except InvalidJSON:
        raise
    except ValueError:  # includes UnicodeDecodeError
        raise InvalidJSON(f"{what} is not valid JSON") from None
    _check_strings_and_depth(value)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidJSON(f"the JSON has the key {_shown(duplicate)} twice in one object")
    return value


def _constant(name: str) -> float:
    raise InvalidJSON(f"the JSON has {name}: numbers must be finite")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"the JSON has the number {_shown(text)}, too large for a float")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise InvalidJSON(f"the JSON has an integer of more than {MAX_DIGITS} digits")
    return int(text)


def _check_strings_and_depth(value: Any) -> None:
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, (list, dict)):
            if depth >= MAX_DEPTH:
                raise InvalidJSON(f"the JSON is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_string(key)
                item = item.values()
            pending.extend((child, depth + 1) for child in item)


def _check_string(text: str) -> None:
    """A lone surrogate (\\ud800 in JSON) cannot be written back as UTF-8: refused here rather than failing later."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidJSON("the JSON has a string with a lone surrogate (not valid Unicode text)") from None


_STRICT = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant, parse_float=_float, parse_int=_int)


def _shown(text: str, limit: int = 40) -> str:
    shown = ascii(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 60
_QUOTE.maxlevel = 2


def shown(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut short (a client may send megabytes in any field)."""
    return _QUOTE.repr(value)


def parameter_name(key: str) -> str:
    """An unknown key as an error's `parameter`: itself when it is a short printable name, else quoted and cut short
    (never empty)."""
    return key if key and len(key) <= 100 and key.isprintable() else shown(key)
