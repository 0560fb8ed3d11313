"""Webhook and upload delivery: Standard Webhooks signatures, retries with backoff, against a real loopback receiver."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest
from support.loopback import LoopbackServer, RecordingHandler, serving

from server.media.delivery import DeliveryOutcome, deliver_upload, deliver_webhook, sign_webhook, verify_webhook
from server.media.netguard import GuardedClient, GuardSettings

pytestmark = pytest.mark.anyio

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
LOOPBACK = GuardSettings(allow_hosts=("127.0.0.1",))


class _Handler(RecordingHandler):
    def respond(self, url) -> None:
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Receiver(LoopbackServer):
    """Answers with `statuses` in order, then 200; records every request."""

    def __init__(self) -> None:
        super().__init__(_Handler)
        self.statuses: list[int] = []


@pytest.fixture
def receiver():
    with serving(Receiver()) as server:
        yield server


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def assert_backoff(delays: list[float], expected: list[float]) -> None:
    """Each delay is the expected one plus at most 10% jitter."""
    assert len(delays) == len(expected)
    for delay, base in zip(delays, expected):
        assert base <= delay <= base * 1.1


# --- signatures --------------------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector():
    signature = sign_webhook(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secret_without_prefix_is_used_as_raw_bytes():
    assert sign_webhook("plain-secret", "msg_1", 1, b"{}") != sign_webhook(SECRET, "msg_1", 1, b"{}")
    signature = sign_webhook("plain-secret", "msg_1", 1, b"{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": signature}
    assert verify_webhook("plain-secret", headers, b"{}", now=1)


def test_verify_accepts_any_listed_signature_and_rejects_malformed_headers():
    good = sign_webhook(SECRET, "msg_1", 1000, b"{}")
    base = {"webhook-id": "msg_1", "webhook-timestamp": "1000"}
    assert verify_webhook(SECRET, {**base, "webhook-signature": f"v1,bm9wZQ== {good}"}, b"{}", now=1000)
    assert not verify_webhook(SECRET, {**base, "webhook-signature": "v1,bm9wZQ=="}, b"{}", now=1000)
    assert not verify_webhook(SECRET, base, b"{}", now=1000)
    assert not verify_webhook(SECRET, {**base, "webhook-timestamp": "soon", "webhook-signature": good}, b"{}", now=1000)


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 5000, "0001000", "\u0661\u0660\u0660\u0660", " 1000", "1000\n"])
def test_verify_refuses_odd_timestamps_without_raising(timestamp):
    """Issue 27: "²" passed str.isdigit() and made int() raise; "0001000" and Arabic-Indic "١٠٠٠" were read as 1000 and
    accepted with the signature of "1000", a text the sender never signed."""
    signature = sign_webhook(SECRET, "msg_1", 1000, b"{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": signature}
    assert not verify_webhook(SECRET, headers, b"{}", now=1000)


async def test_signed_webhook_verifies_and_tampering_fails(receiver):
    payload = {"taskType": "videoInference", "taskUUID": "5f1d…", "videoURL": "https://cdn.test/v.mp4", "cost": 0.0}
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(client, receiver.url("/hook"), payload, secret=SECRET)
    assert outcome == DeliveryOutcome(delivered=True, attempts=1, last_status=200, last_error=None)
    (request,) = receiver.recorded
    assert request.method == "POST"
    assert request.body == json.dumps(payload, separators=(",", ":")).encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("msg_")
    timestamp = int(request.headers["webhook-timestamp"])
    assert abs(time.time() - timestamp) < 60

    assert verify_webhook(SECRET, request.headers, request.body)
    assert not verify_webhook(SECRET, request.headers, request.body.replace(b"0.0", b"9.9"))
    assert not verify_webhook("whsec_" + base64.b64encode(b"another key").decode(), request.headers, request.body)
    assert not verify_webhook(SECRET, request.headers, request.body, now=timestamp + 301)
    assert verify_webhook(SECRET, request.headers, request.body, now=timestamp + 299)
    forged = {**request.headers, "webhook-timestamp": str(timestamp + 1)}
    assert not verify_webhook(SECRET, forged, request.body, now=timestamp)


async def test_unsigned_webhook_has_no_signature_headers(receiver):
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(client, receiver.url("/hook"), {"a": 1}, secret=None)
    assert outcome.delivered
    (request,) = receiver.recorded
    assert request.body == b'{"a":1}'
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & request.headers.keys()


# --- retries -----------------------------------------------------------------------------------------------------


async def test_webhook_is_retried_with_the_same_id_and_doubling_delays(receiver):
    receiver.statuses = [500, 500]
    sleep = RecordingSleep()
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(client, receiver.url("/hook"), {"n": 1}, secret=SECRET, sleep=sleep)
    assert outcome == DeliveryOutcome(delivered=True, attempts=3, last_status=200, last_error=None)
    assert len(receiver.recorded) == 3
    assert len({request.headers["webhook-id"] for request in receiver.recorded}) == 1
    assert all(verify_webhook(SECRET, request.headers, request.body) for request in receiver.recorded)
    assert_backoff(sleep.delays, [0.25, 0.5])


async def test_webhook_gives_up_after_all_attempts(receiver):
    receiver.statuses = [500] * 10
    sleep = RecordingSleep()
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(
            client, receiver.url("/hook"), {}, secret=SECRET, attempts=5, base_delay=1, max_delay=3, sleep=sleep
        )
    assert outcome == DeliveryOutcome(delivered=False, attempts=5, last_status=500, last_error="HTTP 500")
    assert len(receiver.recorded) == 5
    assert_backoff(sleep.delays, [1, 2, 3, 3])


async def test_network_errors_are_retried():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sleep = RecordingSleep()
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(
            client, f"http://127.0.0.1:{closed_port}/hook", {}, secret=None, attempts=3, sleep=sleep
        )
    assert not outcome.delivered
    assert (outcome.attempts, outcome.last_status) == (3, None)
    assert "could not connect" in outcome.last_error
    assert len(sleep.delays) == 2


@pytest.mark.parametrize("url", ["http://169.254.169.254/hook", "http://10.0.0.5/hook", "ftp://127.0.0.1/hook"])
async def test_blocked_webhook_url_is_final_and_not_raised(url):
    sleep = RecordingSleep()
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(client, url, {"a": 1}, secret=SECRET, sleep=sleep)
    assert not outcome.delivered
    assert (outcome.attempts, outcome.last_status) == (1, None)
    assert outcome.last_error.startswith("refused: ")
    assert sleep.delays == []


async def test_malformed_secret_is_reported_not_raised(receiver):
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_webhook(client, receiver.url("/hook"), {}, secret="whsec_not base64!")
    assert (outcome.delivered, outcome.attempts) == (False, 0)
    assert "cannot prepare webhook" in outcome.last_error
    assert receiver.recorded == []


# --- uploads -----------------------------------------------------------------------------------------------------


async def test_upload_puts_the_exact_file_and_retries_on_503(receiver, tmp_path):
    video = tmp_path / "out.mp4"
    video.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    receiver.statuses = [503]
    sleep = RecordingSleep()
    url = receiver.url("/bucket/out.mp4?X-Amz-Signature=abc")
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_upload(client, url, video, "video/mp4", sleep=sleep)
    assert outcome == DeliveryOutcome(delivered=True, attempts=2, last_status=200, last_error=None)
    assert len(receiver.recorded) == 2
    for request in receiver.recorded:
        assert (request.method, request.path) == ("PUT", "/bucket/out.mp4?X-Amz-Signature=abc")
        assert request.headers["content-type"] == "video/mp4"
        assert request.headers["content-length"] == str(video.stat().st_size)
        assert request.body == video.read_bytes()
    assert_backoff(sleep.delays, [0.25])


async def test_upload_to_a_blocked_url_is_refused(tmp_path):
    video = tmp_path / "out.mp4"
    video.write_bytes(b"data")
    async with GuardedClient(GuardSettings()) as client:
        outcome = await deliver_upload(client, "http://127.0.0.1:9/put", video, "video/mp4", sleep=RecordingSleep())
    assert (outcome.delivered, outcome.attempts) == (False, 1)
    assert outcome.last_error == "refused: 127.0.0.1 is a loopback address"


async def test_missing_upload_file_is_reported_without_sending(receiver, tmp_path):
    async with GuardedClient(LOOPBACK) as client:
        outcome = await deliver_upload(client, receiver.url("/put"), tmp_path / "gone.mp4", "video/mp4")
    assert (outcome.delivered, outcome.attempts) == (False, 0)
    assert "gone.mp4" in outcome.last_error
    assert receiver.recorded == []
