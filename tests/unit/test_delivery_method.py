"""`deliveryMethod` on an API node in process (httpx's ASGITransport): a node with no worker cannot finish a sync task
within its wait, and a method the contract does not have is refused. The sync answers of a real server are in
e2e/test_hosted_fields.py."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from support.in_process import api_app, call
from support.server_harness import video_task


def test_sync_past_the_wait_answers_as_async_with_a_message_and_the_task_goes_on(tmp_path):
    """An API node has no worker, so the task cannot finish within the wait."""
    app = api_app(tmp_path, "k", sync_wait_seconds=0.5)
    task = video_task(deliveryMethod="sync")

    async def exchange():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            headers = {"Authorization": "Bearer k"}
            submitted = await client.post("/v1", json=[task], headers=headers)
            polled = await client.post("/v1", json=[{"taskType": "getResponse", "taskUUID": task["taskUUID"]}],
                                       headers=headers)  # fmt: skip
            return submitted, polled

    submitted, polled = asyncio.run(exchange())
    assert submitted.status_code == 200
    (ack,) = submitted.json()["data"]
    assert (ack["taskType"], ack["taskUUID"]) == ("videoInference", task["taskUUID"])
    assert "videoUUID" not in ack and "status" not in ack  # the SDKs read those as results
    assert "sync wait of 0.5 s" in ack["message"] and "getResponse" in ack["message"]
    assert polled.json()["data"][0]["status"] == "processing"


def test_a_bad_delivery_method_is_refused_naming_it(tmp_path):
    task = video_task(deliveryMethod="stream", taskUUID=str(uuid.uuid4()))
    reply = call(api_app(tmp_path, "k"), "POST", "/v1", json=[task], headers={"Authorization": "Bearer k"})
    (error,) = reply.json()["errors"]
    assert (error["code"], error["parameter"]) == ("invalidDeliveryMethod", "deliveryMethod")
