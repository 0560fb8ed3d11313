"""The server's background loops: first-frame image fetching, result deliveries, media expiry.

Each reads its work from the task store (the source of truth), so a restart resumes where the last process stopped.
They call the synchronous store in a thread (`asyncio.to_thread`: its own pool, apart from the requests' threads),
never on the event loop the API answers from.
The webhook body is the contract's business: each adapter registers a function per task type that builds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ltx_runtime.media import OutputFormat

from .delivery import deliver_upload, deliver_webhook
from .jobs import Job
from .logs import task_event
from .service import TaskService
from .settings import Settings
from .tasks import ResultRecord, TaskRecord, TaskStore

log = logging.getLogger("ltx_runtime.server")

WebhookBody = Callable[[TaskRecord, ResultRecord], dict]
"""Builds the JSON body of one result's webhook, in the contract the task came in by."""


async def prepare_loop(store: TaskStore, service: TaskService, client) -> None:
    """Fetch the first-frame image URLs of new tasks, a few at a time, and queue the tasks."""
    fetching: dict[int, asyncio.Task] = {}
    while True:
        for record in await asyncio.to_thread(store.preparing):
            if record.id not in fetching:
                fetching[record.id] = asyncio.create_task(service.prepare(record, client))
                fetching[record.id].add_done_callback(lambda _, task_id=record.id: fetching.pop(task_id, None))
        await asyncio.sleep(0.2)


async def delivery_loop(settings: Settings, store: TaskStore, webhook_bodies: dict[str, WebhookBody], client) -> None:
    """Send each finished result to its webhookURL / uploadEndpoint; the outcome never changes the task's result."""

    async def deliver(delivery) -> None:
        record = await asyncio.to_thread(store.get_by_id, delivery.task_id)
        result = record.results[delivery.index]
        if delivery.kind == "webhook":
            outcome = await deliver_webhook(
                client, delivery.url, webhook_bodies[record.task_type](record, result), secret=settings.webhook_secret,
                message_id=f"msg_{result.video_uuid.replace('-', '')}",  # the same id if a restart re-sends it
            )  # fmt: skip
        else:
            path = settings.media_dir / result.file_name
            content_type = OutputFormat(Job.from_dict(record.job).output_format).content_type
            outcome = await deliver_upload(client, delivery.url, path, content_type)
        await asyncio.to_thread(
            store.finish_delivery, delivery.id, outcome.delivered, outcome.attempts, outcome.last_status,
            outcome.last_error,
        )  # fmt: skip
        task_event("delivered" if outcome.delivered else "delivery_failed", record.task_uuid,
                   level=logging.INFO if outcome.delivered else logging.WARNING, kind=delivery.kind,
                   videoUUID=result.video_uuid, attempts=outcome.attempts, status=outcome.last_status,
                   error=outcome.last_error)  # fmt: skip

    running: set[asyncio.Task] = set()
    while True:
        for delivery in await asyncio.to_thread(store.take_deliveries):
            job = asyncio.create_task(deliver(delivery))
            running.add(job)
            job.add_done_callback(running.discard)
        await asyncio.sleep(0.25)


def remove_expired_media(settings: Settings, store: TaskStore, now: float) -> list[str]:
    """Delete the result files whose ttl has passed; returns their videoUUIDs."""
    expired = store.expired_files(now)
    for video_uuid, file_name in expired:
        (settings.media_dir / file_name).unlink(missing_ok=True)
        store.forget_file(video_uuid)
    return [video_uuid for video_uuid, _ in expired]


async def cleanup_loop(settings: Settings, store: TaskStore) -> None:
    while True:
        await asyncio.to_thread(remove_expired_media, settings, store, time.time())
        await asyncio.sleep(5)
