"""The server's background loops: first-frame image fetching, result deliveries, media expiry, expired leases.

Each reads its work from the task store (the source of truth), so a restart resumes where the last process stopped;
with several API nodes each piece of work is claimed in the store, so one node does it.
They call the synchronous store in a thread (`asyncio.to_thread`: its own pool, apart from the requests' threads),
never on the event loop the API answers from.
The webhook body is the contract's business: each adapter registers a function per task type that builds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from ltx_runtime.media import OutputFormat

from .delivery import DeliveryOutcome, deliver_upload, deliver_webhook
from .jobs import Job
from .logs import task_event
from .media_store import MediaNotFound, MediaStore, media_key
from .service import TaskService
from .settings import Settings
from .tasks import ResultRecord, TaskRecord, TaskStore

log = logging.getLogger("ltx_runtime.server")

DELIVERY_LEASE_SECONDS = 600
"""How long a node holds a delivery it sends (six tries with back-off, each with its own timeout, fit well within);
if the node dies, another sends it after this."""

WebhookBody = Callable[[TaskRecord, ResultRecord], dict]
"""Builds the JSON body of one result's webhook, in the contract the task came in by."""


async def prepare_loop(store: TaskStore, service: TaskService, client, node: str) -> None:
    """Fetch the first-frame image URLs of new tasks, a few at a time, and queue the tasks. Each task is claimed for
    twice the fetch's deadline, so that another API node takes it over only if this one died."""
    lease_seconds = 2 * client.settings.total_timeout
    fetching: dict[int, asyncio.Task] = {}
    while True:
        for record in await asyncio.to_thread(store.take_preparing, node, lease_seconds):
            if record.id not in fetching:
                fetching[record.id] = asyncio.create_task(service.prepare(record, client))
                fetching[record.id].add_done_callback(lambda _, task_id=record.id: fetching.pop(task_id, None))
        await asyncio.sleep(0.2)


async def delivery_loop(
    settings: Settings, store: TaskStore, media: MediaStore, webhook_bodies: dict[str, WebhookBody], client
) -> None:
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
            content_type = OutputFormat(Job.from_dict(record.job).output_format).content_type
            outcome = await upload_from_store(settings, media, client, delivery.url, result.file_name, content_type)
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
        for delivery in await asyncio.to_thread(store.take_deliveries, settings.node, DELIVERY_LEASE_SECONDS):
            job = asyncio.create_task(deliver(delivery))
            running.add(job)
            job.add_done_callback(running.discard)
        await asyncio.sleep(0.25)


async def upload_from_store(
    settings: Settings, media: MediaStore, client, url: str, file_name: str | None, content_type: str
) -> DeliveryOutcome:
    """PUT a result to an uploadEndpoint from a local copy (the local store's own file, linked; S3's, downloaded)."""
    if file_name is None:
        return DeliveryOutcome(False, 0, None, "cannot upload: the result's ttl has passed")
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    copy = settings.scratch_dir / f"upload-{uuid.uuid4()}-{file_name}"
    try:
        await asyncio.to_thread(media.download, media_key(file_name), copy)
        return await deliver_upload(client, url, copy, content_type)
    except MediaNotFound:
        return DeliveryOutcome(False, 0, None, f"cannot upload {file_name}: not in the media store")
    finally:
        copy.unlink(missing_ok=True)


def remove_expired_media(media: MediaStore, store: TaskStore, now: float) -> list[str]:
    """Delete the result files whose ttl has passed; returns their videoUUIDs."""
    expired = store.expired_files(now)
    for video_uuid, file_name in expired:
        media.delete(media_key(file_name))
        store.forget_file(video_uuid)
    return [video_uuid for video_uuid, _ in expired]


async def cleanup_loop(media: MediaStore, store: TaskStore) -> None:
    while True:
        await asyncio.to_thread(remove_expired_media, media, store, time.time())
        await asyncio.sleep(5)


async def lease_loop(settings: Settings, store: TaskStore) -> None:
    """On an API node (no worker pool of its own to watch): running tasks whose lease ran out, because their worker
    or its whole host died, go back to the queue. Any node that sees an expired lease first requeues it."""
    while True:
        requeued = store.requeue_expired(settings.max_attempts)
        if requeued:
            log.warning("requeued task(s) %s: their worker's lease ran out", requeued)
        await asyncio.sleep(1)
