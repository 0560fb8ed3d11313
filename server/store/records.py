"""The task store's records: the task row is the source of truth; there is no second queue.

`TaskStore` is the interface the server and the workers use, and `open_store(url)` (`server/store/__init__.py`) opens
one: `sqlite:///PATH` (one box,
the default: `server/store/sqlite.py`) or `postgresql://...` (several hosts sharing one database:
`server/store/postgres.py`). Both speak the same SQL (`server/store/sql.py`): the claim is
`UPDATE ... WHERE id = (SELECT ... [FOR UPDATE SKIP LOCKED]) RETURNING`, leases are renewed by the worker's heartbeat
and expire on the database's clock, never on a host's (architecture.md, scale-out).

Lifecycle of a task: [preparing (the server fetches its first-frame image) ->] queued -> running (a worker holds a
lease and renews it) -> succeeded | failed; a task that has not finished can be cancelled at any point (a running one's
worker sees it at its next denoising step and stops). A task whose lease runs out (its worker died, or the whole
server did) goes back to queued and runs again, up to `max_attempts`; results already finished are kept, so each
result is produced exactly once. Each result has its own
row with a videoUUID allocated at submission, so `getResponse` can name it while it is still processing.

Worker ids start with their server's node id (`Settings.node`, e.g. `gpu-host-1/worker0-1a2b3c4d`): at start-up a node
requeues only the tasks its own previous workers held (`requeue_node`), never another host's; expired leases anywhere
are requeued by whichever node sees them first (`requeue_expired`). Deliveries are claimed the same way: one node sends
each, under a lease, and a delivery whose sender died goes back to pending when that lease runs out.

The store keeps the runtime's own job type (a JSON dict of `server.tasks.jobs.Job`; its seeds are the results rows')
and error kinds (`ErrorKind` values in `error_code`) as data; it knows no contract. A task submitted over a WebSocket session remembers that session, and
each result (or failure) is marked once it has been reported to it, so that a client resuming the session gets what
finished while it was away, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Sequence


class TaskStatus(StrEnum):
    """Where a task stands (the lifecycle above); the values are what the store's `status` column and the wire hold."""

    PREPARING = "preparing"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED = (TaskStatus.PREPARING, TaskStatus.QUEUED, TaskStatus.RUNNING)
UNSUCCESSFUL = (TaskStatus.FAILED, TaskStatus.CANCELLED)
"""Finished without all of its results."""


class ResultStatus(StrEnum):
    """Where one result of a task stands (the `status` column of its row, and its status on the wire)."""

    PROCESSING = "processing"
    SUCCESS = "success"


class DuplicateTask(Exception):
    """This API key already submitted a task with this taskUUID."""


class QueueFull(Exception):
    """This API key already has its maximum of unfinished tasks (the count and the insert are one transaction)."""


class LeaseLost(Exception):
    """The worker no longer holds this task (its lease ran out and the task went to someone else)."""


@dataclass
class StoredImage:
    """An image kept in the media store (`images/<file_name>`): uploaded with imageUpload, or a task's first frame."""

    image_uuid: str
    file_name: str
    content_type: str | None
    """None for an image stored before the type was recorded."""


@dataclass
class ResultRecord:
    index: int
    video_uuid: str
    seed: int
    status: ResultStatus
    progress: int
    stage: str | None
    file_name: str | None
    gpu_seconds: float | None
    cost: float | None
    reported: bool = False
    expires_at: float | None = None
    """When the result's file is deleted (its ttl); None until it is finished."""
    preview: dict | None = None
    """The latest live preview while denoising: {"image": a PNG data URI, "step": stage-1 steps done, "steps": stage-1
    steps} (ltx_runtime/preview.py)."""
    duration: float | None = None
    """Seconds, when the duration head picked them (the request named no duration); else None."""


@dataclass
class TaskRecord:
    id: int
    key_id: str
    task_uuid: str
    task_type: str
    request: dict[str, Any]
    job: dict[str, Any]
    status: TaskStatus
    attempts: int
    error_code: str | None
    error_message: str | None
    results: list[ResultRecord]
    session_uuid: str | None = None
    reported: bool = False
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class DeliveryRecord:
    """A delivery this node has claimed and now sends."""

    id: int
    task_id: int
    index: int
    kind: str
    url: str


@dataclass
class DeliveryStatus:
    """Where one result's webhook or upload stands (getTaskDetails)."""

    index: int
    kind: str                                      # webhook | upload
    url: str
    state: str                                     # pending | sending | delivered | failed
    attempts: int
    last_status: int | None
    last_error: str | None


@dataclass
class WorkerRecord:
    """What a worker last reported about itself."""

    worker_id: str
    pid: int | None
    state: str                                     # starting | ready | failed | stopped
    detail: str | None
    updated_at: float
    memory_profile: str | None                     # where the worker's engine keeps its weights
    memory_budget: int | None                      # GPU bytes a request may plan to use; None: no limit


WORKER_HEARTBEAT_SECONDS = 5
"""How often a supervisor touches its live workers' rows (`TaskStore.touch_workers`)."""
WORKER_STALE_SECONDS = 6 * WORKER_HEARTBEAT_SECONDS
"""A worker row not touched for this long belongs to a supervisor (a host) that is gone."""


class TaskStore(Protocol):
    """What the server and the workers need from a task store (open_store picks the backend)."""

    errors: tuple[type[Exception], ...]
    """What the backend raises when the store fails (locked, disk full, server gone), as opposed to a bug."""

    # the server's side
    def submit(self, key_id: str, task_uuid: str, task_type: str, request: dict, job: dict, seeds: list[int],
               status: TaskStatus = TaskStatus.QUEUED, session_uuid: str | None = None, max_pending: int | None = None,
               images: Sequence[StoredImage] = (), audio: StoredImage | None = None) -> TaskRecord: ...
    def take_preparing(self, owner: str, lease_seconds: float) -> list[TaskRecord]: ...
    def prepared(self, task_id: int, job: dict, images: Sequence[StoredImage] = (),
                 audio: StoredImage | None = None) -> None: ...
    def get(self, key_id: str, task_uuid: str) -> TaskRecord | None: ...
    def get_by_id(self, task_id: int) -> TaskRecord: ...
    def list_tasks(self, key_id: str, task_type: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]: ...
    def queue_position(self, task_id: int) -> int: ...
    def cancel(self, task_id: int) -> str | None: ...
    def unreported(self, key_id: str, session_uuid: str, finished_since: float) -> list[TaskRecord]: ...
    def mark_reported(self, task_id: int, indexes: list[int]) -> None: ...
    def result_by_video(self, video_uuid: str) -> tuple[ResultRecord, float | None] | None: ...
    def pending_count(self, key_id: str | None = None) -> int: ...
    def status_counts(self) -> dict[TaskStatus, int]: ...
    def oldest_queued_at(self) -> float | None: ...
    def finished_durations(self) -> tuple[int, float]: ...
    def expired_files(self, now: float) -> list[tuple[str, str]]: ...
    def forget_file(self, video_uuid: str) -> None: ...
    def take_result_files(self, task_id: int) -> list[str]: ...
    def put_image(self, key_id: str, image: StoredImage) -> None: ...
    def image_file(self, key_id: str, image_uuid: str) -> str | None: ...
    def image(self, image_uuid: str) -> StoredImage | None: ...
    def expired_images(self, created_before: float) -> list[StoredImage]: ...
    def forget_images(self, image_uuids: list[str]) -> None: ...
    def expired_tasks(self, finished_before: float, limit: int = 500) -> dict[int, list[str]]: ...
    def delete_tasks(self, task_ids: list[int]) -> None: ...
    # the workers' side
    def claim(self, worker_id: str, lease_seconds: float) -> TaskRecord | None: ...
    def wait_for_work(self, timeout: float) -> None: ...
    def renew_lease(self, task_id: int, worker_id: str, lease_seconds: float) -> bool: ...
    def holds(self, task_id: int, worker_id: str) -> bool: ...
    def set_progress(self, task_id: int, index: int, progress: int, stage: str | None = None) -> None: ...
    def set_preview(self, task_id: int, index: int, preview: dict) -> None: ...
    def complete_result(self, task_id: int, worker_id: str, index: int, file_name: str, gpu_seconds: float,
                        cost: float, expires_at: float, deliveries: list[tuple[str, str]],
                        duration: float | None = None) -> None: ...
    def finish(self, task_id: int, worker_id: str) -> None: ...
    def fail(self, task_id: int, code: str, message: str) -> None: ...
    def requeue_expired(self, max_attempts: int) -> list[int]: ...
    def requeue_owned(self, max_attempts: int, owner: str) -> list[int]: ...
    def requeue_node(self, max_attempts: int, node: str) -> list[int]: ...
    def release_owned(self, owner: str) -> list[int]: ...
    def worker_state(self, worker_id: str, pid: int, state: str, detail: str = "",
                     memory_profile: str | None = None, memory_budget: int | None = None) -> None: ...
    def workers(self) -> list[WorkerRecord]: ...
    def touch_workers(self, worker_ids: list[str]) -> None: ...
    # the delivery outbox
    def take_deliveries(self, owner: str, lease_seconds: float) -> list[DeliveryRecord]: ...
    def finish_delivery(self, delivery_id: int, delivered: bool, attempts: int, status: int | None, error: str | None) -> None: ...
    def release_claims(self, owner: str) -> None: ...
    def unsent_deliveries(self) -> int: ...
    def deliveries_of(self, task_id: int) -> list[DeliveryStatus]: ...
    # the store itself
    def now(self) -> float: ...  # the database's clock, which every timestamp in the store is measured on
    def check(self) -> None: ...
    def schema_version(self) -> int: ...
    def close(self) -> None: ...


def live_workers(workers: list[WorkerRecord], now: float) -> list[WorkerRecord]:
    """The worker rows whose supervisor touched them recently (stopped workers left out)."""
    return [w for w in workers if w.state != "stopped" and now - w.updated_at < WORKER_STALE_SECONDS]
