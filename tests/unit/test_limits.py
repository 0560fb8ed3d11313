"""The abuse-limit building blocks without a server: strict JSON parsing, token buckets and the per-key limiter."""

from __future__ import annotations

import time

import pytest

from server.api.bodies import MAX_DEPTH, InvalidJSON, parameter_name, parse_json, shown
from server.api.limits import MAX_TRACKED_KEYS, RateLimiter, TokenBucket


def test_ordinary_json_passes():
    text = '[{"taskType":"videoInference","providerSettings":{"lightricks":{"generateAudio":true}},"seed":42,"x":1.5}]'
    assert parse_json(text.encode()) == [
        {"taskType": "videoInference", "providerSettings": {"lightricks": {"generateAudio": True}}, "seed": 42, "x": 1.5}
    ]
    assert parse_json('{"prompt": "caf\\u00e9 \\ud83d\\ude00"}') == {"prompt": "café 😀"}  # a surrogate pair is fine


@pytest.mark.parametrize("text, says", [
    (b"[{not json", "the body is not valid JSON"),
    (b"\xff\xfe", "the body is not valid JSON"),
    ('{"a": NaN}', "NaN"),
    ('{"a": -Infinity}', "-Infinity"),
    ('{"a": 1e999}', "too large for a float"),
    ('{"a": ' + "9" * 101 + "}", "more than 100 digits"),
    ('{"a": 1, "a": 2}', "the key 'a' twice"),
    ('{"\\ud800": 1}', "lone surrogate"),
    ('["\\udfff"]', "lone surrogate"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
    ("[" * 100_000 + "]" * 100_000, f"deeper than {MAX_DEPTH}"),
])  # fmt: skip
def test_hostile_json_is_refused_with_a_reason(text, says):
    with pytest.raises(InvalidJSON) as refused:
        parse_json(text)
    assert says in str(refused.value)


def test_nesting_up_to_the_limit_is_accepted():
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_quoting_user_values_is_short_and_names_are_never_empty():
    assert len(shown("x" * 1_000_000)) < 80 and len(shown(list(range(1000)))) < 100
    assert parameter_name("width") == "width"
    assert parameter_name("") == "''" and len(parameter_name("k" * 5000)) < 80 and parameter_name("a\nb") == "'a\\nb'"


def test_a_token_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket(rate=20, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert 0 < bucket.wait_seconds() <= 0.05
    time.sleep(0.06)
    assert bucket.take() and not bucket.take()


def test_the_rate_limiter_is_per_key_and_can_be_off():
    limiter = RateLimiter(per_second=0.001, burst=2)
    assert limiter.refusal("a") is None and limiter.refusal("a") is None
    refusal = limiter.refusal("a")
    assert refusal and "0.001 tasks per second (burst 2)" in refusal and "retry in" in refusal
    assert limiter.refusal("b") is None  # another key has its own bucket
    off = RateLimiter(per_second=0, burst=1)
    assert all(off.refusal("a") is None for _ in range(1000))


def test_the_rate_limiter_keeps_a_bounded_number_of_keys():
    limiter = RateLimiter(per_second=0.001, burst=1)
    limiter.refusal("first")
    for n in range(MAX_TRACKED_KEYS):
        limiter.refusal(f"key-{n}")
    assert len(limiter._buckets) == MAX_TRACKED_KEYS
    assert limiter.refusal("first") is None  # its bucket was the least recently used, and was dropped
