"""The server's background loops: first-frame image fetching, result deliveries, expiry (results, images, task rows),
expired leases.

Each reads its work from the task store (the source of truth), so a restart resumes where the last process stopped;
each outlives a failing store or disk (`server/workers/resilience.py`: log, back off, retry; readiness shows it
failing); with several API nodes each piece of work is claimed in the store, so one node does it.
They call the synchronous store in a thread (`asyncio.to_thread`: its own pool, apart from the requests' threads),
never on the event loop the API answers from.
The webhook body is the contract's business: each adapter registers a function per task type that builds it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from ltx_runtime.media import OutputFormat

from ..logs import task_event
from ..media.delivery import DeliveryOutcome, deliver_upload, deliver_webhook
from ..media.store import MediaNotFound, MediaStore, image_key, media_key
from ..settings import Settings
from ..store.records import ResultRecord, TaskRecord, TaskStore
from ..tasks.jobs import Job
from ..tasks.service import TaskService
from ..workers.resilience import LoopHealth, log_failure, run_forever

log = logging.getLogger("ltx_runtime.server")

DELIVERY_LEASE_SECONDS = 600
"""How long a node holds a delivery it sends (six tries with back-off, each with its own timeout, fit well within);
if the node dies, another sends it after this."""

WebhookBody = Callable[[TaskRecord, ResultRecord], dict]
"""Builds the JSON body of one result's webhook, in the contract the task came in by."""


async def prepare_loop(store: TaskStore, service: TaskService, client, node: str, health: LoopHealth) -> None:
    """Fetch the first-frame image URLs of new tasks, a few at a time, and queue the tasks. Each task is claimed for
    twice the fetch's deadline, so that another API node takes it over only if this one died (or, when the store
    failed mid-way, until the claim runs out and it is fetched again)."""
    lease_seconds = 2 * client.settings.total_timeout
    fetching: dict[int, asyncio.Task] = {}

    async def take() -> None:
        for record in await asyncio.to_thread(store.take_preparing, node, lease_seconds):
            if record.id not in fetching:
                fetching[record.id] = asyncio.create_task(service.prepare(record, client))
                fetching[record.id].add_done_callback(lambda _, task_id=record.id: fetching.pop(task_id, None))
                fetching[record.id].add_done_callback(log_failure(f"preparing task {record.task_uuid}"))

    await run_forever("image fetching", take, 0.2, health)


async def delivery_loop(
    settings: Settings, store: TaskStore, media: MediaStore, webhook_bodies: dict[str, WebhookBody], client,
    health: LoopHealth,
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
            content_type = OutputFormat(Job.from_record(record).output_format).content_type
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

    async def take() -> None:
        # A delivery whose send failed on a store error stays claimed; it is sent again once its claim runs out.
        for delivery in await asyncio.to_thread(store.take_deliveries, settings.node, DELIVERY_LEASE_SECONDS):
            job = asyncio.create_task(deliver(delivery))
            running.add(job)
            job.add_done_callback(running.discard)
            job.add_done_callback(log_failure(f"delivery {delivery.id}"))

    await run_forever("deliveries", take, 0.25, health)


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


def remove_expired(settings: Settings, media: MediaStore, store: TaskStore, now: float) -> None:
    """Everything past its ttl: result files (the task's ttl), images (`image_ttl_seconds` after they were stored,
    except the first frame of a task still to run) and finished tasks' rows (`task_ttl_seconds` after they
    finished, with what they still have). Files go first: a row is never left pointing at nothing it once had."""
    remove_expired_media(media, store, now)
    images = store.expired_images(now - settings.image_ttl_seconds)
    for image in images:
        media.delete(image_key(image.file_name))
    if images:
        store.forget_images([image.image_uuid for image in images])
    tasks = store.expired_tasks(now - settings.task_ttl_seconds)
    for names in tasks.values():
        for name in names:
            media.delete(name)
    if tasks:
        store.delete_tasks(list(tasks))
    if images or tasks:
        log.info("expired %d image(s) and %d task(s)", len(images), len(tasks))


async def cleanup_loop(settings: Settings, media: MediaStore, store: TaskStore, health: LoopHealth) -> None:
    def clean_now() -> None:
        remove_expired(settings, media, store, store.now())  # ttls end on the database's clock, as they began

    async def clean() -> None:
        await asyncio.to_thread(clean_now)

    await run_forever("expiry", clean, 5, health)


async def lease_loop(settings: Settings, store: TaskStore, health: LoopHealth) -> None:
    """On an API node (no worker pool of its own to watch): running tasks whose lease ran out, because their worker
    or its whole host died, go back to the queue. Any node that sees an expired lease first requeues it."""

    async def requeue() -> None:
        requeued = await asyncio.to_thread(store.requeue_expired, settings.max_attempts)
        if requeued:
            log.warning("requeued task(s) %s: their worker's lease ran out", requeued)

    await run_forever("expired leases", requeue, 1, health)
