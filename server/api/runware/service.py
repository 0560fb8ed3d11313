"""What each Runware task type does, on top of the task service; the routes only move JSON in and out of `handle`."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ltx_runtime.request import SafetyMode

from ...store.records import UNSUCCESSFUL, ResultRecord, ResultStatus, TaskRecord
from ...store.threads import in_thread
from ...tasks.jobs import ErrorKind, TaskError
from ...tasks.service import TaskService, not_found_message
from ..auth import ApiKeys, KeyChecksThrottled
from ..bodies import shown
from ..limits import RateLimiter
from .protocol import ContractError, Reply, contract_error, failure_error
from .validation import TASK_TYPE as VIDEO_INFERENCE
from .validation import VideoJob, validate_video_inference

log = logging.getLogger("ltx_runtime.server")
INVALID_KEY_MESSAGE = "Invalid API key. Check the key configured for this ltx-runtime server."
TASK_TYPES = (
    "authentication", "ping", VIDEO_INFERENCE, "getResponse", "cancelTask", "imageUpload", "getTaskDetails", "listTasks"
)  # fmt: skip
LIST_LIMIT_MAX = 50
LIST_OFFSET_MAX = 2**31 - 1
"""Far past any key's tasks, and within what the store's integers hold (SQLite's are 64-bit)."""
MAX_TASKS_PER_REQUEST = 100
"""Tasks in one REST body or WebSocket frame; the SDKs send one or two."""
SYNC_POLL_SECONDS = 0.25
"""How often a sync videoInference reply looks at its task while it waits. A poll, not a wake-up: the workers record
the results, and they are other processes (spawned children, or another host's), so no event in this process would
see a task end; a wake-up would need a channel from every worker (Postgres NOTIFY, a pipe per spawned worker). The
poll costs one read of the task per waiting request each 0.25 s (about 0.1 ms on SQLite) and adds at most 0.25 s to
a generation of seconds to minutes."""
GENERATION_FIELDS = (
    "model", "width", "height", "duration", "fps", "audio", "seeds", "steps", "cfg_scale", "negative_prompt", "loras"
)  # fmt: skip
"""The job's fields getTaskDetails reports as `generation`: what the worker generates, with defaults and image-derived
sizes filled in (steps, cfg_scale, negative_prompt and loras: None where the task left them to the official defaults)."""


@dataclass
class Session:
    """One REST request or one WebSocket connection."""

    key_id: str | None = None
    client: str | None = None
    """The client's address: failed key checks are throttled per address."""
    connection_uuid: str | None = None
    sent_successes: set[str] = field(default_factory=set)
    """videoUUIDs already reported as success on this WebSocket (see _get_response)."""
    websocket: bool = False


class RunwareService:
    def __init__(self, tasks: TaskService, keys: ApiKeys, demo: bool, limiter: RateLimiter | None = None):
        self.tasks = tasks
        self.keys = keys
        self.demo = demo
        self.limiter = limiter or RateLimiter(0, 1)  # none given: no limit

    async def handle(self, tasks: Any, session: Session) -> Reply:
        """Each task runs in the thread pool: the store is synchronous, and a wait on it (SQLite's write lock, a
        Postgres round trip) must not stall the event loop and every other client with it."""
        reply = Reply()
        if not isinstance(tasks, list):
            reply.errors.append(_body_error("the body must be a JSON array of task objects"))
            return reply
        if not tasks:
            reply.errors.append(_body_error("the task array is empty: send at least one task"))
            return reply
        if len(tasks) > MAX_TASKS_PER_REQUEST:
            reply.errors.append(_body_error(f"{len(tasks)} tasks in one request; at most {MAX_TASKS_PER_REQUEST}"))
            return reply
        for task in tasks:
            try:
                answer = await in_thread(self._handle_one, task, session)
                if task.get("taskType") == VIDEO_INFERENCE and task.get("deliveryMethod") == "sync":
                    answer = await self._wait_for_results(task, session, answer)
                reply.extend(answer)
            except ContractError as error:
                reply.errors.append(with_task_ids(error, task))
            except Exception:  # noqa: BLE001 - a bug on one task must not hide what the others got (acks included)
                task_uuid = _string(task.get("taskUUID")) if isinstance(task, dict) else None
                log.exception("a task failed unexpectedly taskUUID=%s", task_uuid)
                error = ContractError("internalError", "the server failed on this task; it was not carried out",
                                      parameter="taskUUID", status=500)  # fmt: skip
                reply.errors.append(with_task_ids(error, task))
        return reply

    async def _wait_for_results(self, task: dict, session: Session, ack: Reply) -> Reply:
        """`deliveryMethod: "sync"`: the results themselves (or the task's failure) once they are all there, at most
        `sync_wait_seconds` after the submit; past that, the ack with a message saying to poll getResponse. The wait
        is asynchronous: it holds no thread, only this request (or this WebSocket's frame)."""
        deadline = time.monotonic() + self.tasks.settings.sync_wait_seconds
        while True:
            record = await in_thread(self._find, task, session)
            if record.status in UNSUCCESSFUL or all(r.status == ResultStatus.SUCCESS for r in record.results):
                return await in_thread(self._get_response, {"taskUUID": record.task_uuid}, session)
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(SYNC_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        wait = self.tasks.settings.sync_wait_seconds
        for item in ack.data:
            item["message"] = (
                f"not finished within this server's sync wait of {wait:g} s: the task goes on; poll getResponse with "
                "this taskUUID for its results"
            )
        return ack

    def _handle_one(self, task: Any, session: Session) -> Reply:
        if not isinstance(task, dict):
            raise _body_error("each task must be a JSON object")
        task_type = task.get("taskType")
        if task_type == "authentication":
            return Reply(data=[self._authenticate(task, session)])
        if task_type is None:
            raise ContractError("missingTaskType", "taskType is required", parameter="taskType")
        if session.key_id is None:
            raise missing_key_error()
        refusal = self.limiter.refusal(session.key_id)
        if refusal:
            raise ContractError("rateLimitExceeded", refusal, parameter="apiKey", status=429)
        if task_type == "ping":
            return Reply(data=[{"taskType": "ping", "pong": True}])
        if task_type == VIDEO_INFERENCE:
            return Reply(data=[self._submit(task, session)])
        if task_type == "getResponse":
            return self._get_response(task, session)
        if task_type == "cancelTask":
            return Reply(data=[self._cancel(task, session)])
        if task_type == "imageUpload":
            return Reply(data=[self._image_upload(task, session)])
        if task_type == "getTaskDetails":
            return Reply(data=[self._task_details(task, session)])
        if task_type == "listTasks":
            return Reply(data=[self._list_tasks(task, session)])
        raise ContractError(
            "invalidTaskType", f"unknown taskType {shown(task_type)}; this server handles {', '.join(TASK_TYPES)}",
            parameter="taskType",
        )  # fmt: skip

    def _authenticate(self, task: dict, session: Session) -> dict:
        key_id = self.identify(task.get("apiKey"), session, task)
        if key_id is None:
            raise invalid_key_error()
        session.key_id = key_id
        if session.websocket:
            resumed = task.get("connectionSessionUUID")
            session.connection_uuid = resumed if isinstance(resumed, str) and resumed else str(uuid.uuid4())
            return {"taskType": "authentication", "connectionSessionUUID": session.connection_uuid}
        return {"taskType": "authentication"}

    def identify(self, key: Any, session: Session, task: Any) -> str | None:
        """The key's id, or None for a wrong key; a ContractError (rateLimitExceeded, carrying `task`'s ids) while
        the session's client address has failed too many key checks."""
        try:
            return self.keys.identify(key, session.client)
        except KeyChecksThrottled as error:
            refusal = ContractError("rateLimitExceeded", str(error), parameter="apiKey", status=429)
            raise with_task_ids(refusal, task) from None

    async def replay(self, session: Session) -> list[Reply]:
        """What finished for this WebSocket session while no connection had it (one frame per task), each result
        once: sent after the authentication reply when a client resumes its connectionSessionUUID."""
        return await in_thread(self._replay, session)

    def _replay(self, session: Session) -> list[Reply]:
        frames = []
        for record in self.tasks.unreported(session.key_id, session.connection_uuid):
            if record.status in UNSUCCESSFUL:
                frames.append(Reply(errors=[self._failure(record)]))
                self.tasks.mark_reported(record, [])
                continue
            finished = [result for result in record.results
                        if result.status == ResultStatus.SUCCESS and not result.reported]
            frames.append(Reply(data=[self.result_item(record, result) for result in finished]))
            session.sent_successes.update(result.video_uuid for result in finished)
            self.tasks.mark_reported(record, [result.index for result in finished])
        return frames

    def _submit(self, task: dict, session: Session) -> dict:
        job = validate_video_inference(task, demo=self.demo, loras=self.tasks.loras)
        try:
            self.tasks.submit(
                session.key_id, task["taskUUID"], VIDEO_INFERENCE, task, job,
                session_uuid=session.connection_uuid if session.websocket else None,
            )  # fmt: skip
        except TaskError as error:
            parameter = {
                ErrorKind.INVALID_IMAGE: "inputs.frameImages", ErrorKind.INVALID_AUDIO: "inputs.audio",
                ErrorKind.DUPLICATE: "taskUUID", ErrorKind.QUEUE_FULL: "apiKey",
            }.get(error.kind)  # fmt: skip
            raise contract_error(error, parameter) from None
        # The ack carries nothing else (but a slow demo clip's warning): the Python SDK treats a videoUUID or a status
        # here as finished results.
        ack = {"taskType": VIDEO_INFERENCE, "taskUUID": task["taskUUID"]}
        if note := self.tasks.demo_note(job):
            ack["warning"] = note
        return ack

    def _find(self, task: dict, session: Session) -> TaskRecord:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str):
            raise ContractError("missingTaskUUID", "taskUUID is required", parameter="taskUUID")
        try:
            record = self.tasks.get(session.key_id, task_uuid)
            if record.task_type != VIDEO_INFERENCE:  # a request of another API on the same key
                raise TaskError(ErrorKind.NOT_FOUND, not_found_message(task_uuid))
        except TaskError as error:
            if error.kind is ErrorKind.NOT_FOUND and self.keys is not None and self.keys.accept_any:
                error.message += " (in demo mode any key is accepted, and each key sees only its own tasks)"
            raise contract_error(error, "taskUUID") from None
        return record

    def _failure(self, record: TaskRecord) -> ContractError:
        return failure_error(record.error_code, record.error_message, record.task_type, record.task_uuid)

    def _get_response(self, task: dict, session: Session) -> Reply:
        """One item per requested result: processing (with its pre-allocated videoUUID and progress) or success.

        The Python SDK 0.5.24 adds up success items over polls, so a cumulative reply hands it the same video twice
        when numberResults > 1. On a WebSocket, a success is therefore sent once per connection; until every result
        has been sent, a result already sent is repeated as processing at 100 %, which keeps the SDK's count of
        items right without counting the video again. REST replies are always cumulative.
        """
        record = self._find(task, session)
        own_session = session.websocket and record.session_uuid == session.connection_uuid
        if record.status in UNSUCCESSFUL:
            if own_session and not record.reported:
                self.tasks.mark_reported(record, [])
            return Reply(errors=[self._failure(record)])
        items = []
        all_sent = all(r.video_uuid in session.sent_successes for r in record.results)
        for result in record.results:
            repeat = session.websocket and not all_sent and result.video_uuid in session.sent_successes
            if result.status == ResultStatus.SUCCESS and not repeat:
                items.append(self.result_item(record, result))
                if session.websocket:
                    session.sent_successes.add(result.video_uuid)
            else:
                item = _item(record, result, status="processing", progress=result.progress)
                if note := self.tasks.demo_note(VideoJob.from_record(record)):
                    item["warning"] = note
                if task.get("includePreview") is True:  # this server's extension, for the playground page
                    item["stage"] = result.stage  # the stage of ltx_runtime.progress.STAGES running now
                    if result.preview:
                        item["preview"] = result.preview  # the live preview while denoising
                items.append(item)
        newly_sent = [result.index for result in record.results
                      if result.status == ResultStatus.SUCCESS and not result.reported]
        if own_session and newly_sent:
            self.tasks.mark_reported(record, newly_sent)
        return Reply(data=items)

    def _cancel(self, task: dict, session: Session) -> dict:
        """cancelTask (this server's own task type): a waiting task stops at once, a running one within one
        denoising step; getResponse then reports taskCancelled."""
        record = self._find(task, session)
        try:
            cancelled = self.tasks.cancel(session.key_id, record.task_uuid)
        except TaskError as error:
            raise contract_error(error, "taskUUID") from None
        return {"taskType": "cancelTask", "taskUUID": cancelled.task_uuid, "status": "cancelled"}

    def result_item(self, record: TaskRecord, result: ResultRecord) -> dict[str, Any]:
        """A finished result as getResponse, session replay and webhooks report it."""
        item = _item(record, result, status="success", videoURL=self.tasks.media_url(result), seed=result.seed)
        job = VideoJob.from_record(record)
        if job.safety.mode is not SafetyMode.NONE:
            item["NSFWContent"] = False  # checked, and not flagged: a flagged result never gets this far
        if job.include_cost:
            item["cost"] = result.cost
        if result.duration is not None:  # no duration asked: the one the duration head picked (LTX-2.5)
            item["duration"] = result.duration
        return item

    def webhook_body(self, record: TaskRecord, result: ResultRecord) -> dict[str, Any]:
        """Both shapes seen in the wild: the flat result item, and the {"data": [item]} envelope."""
        item = self.result_item(record, result)
        return {"data": [item], **item}

    def _task_details(self, task: dict, session: Session) -> dict:
        record = self._find(task, session)
        job = VideoJob.from_record(record)
        response = self._get_response({"taskUUID": record.task_uuid}, Session(key_id=session.key_id)).body()
        return {
            "taskType": "getTaskDetails",
            "taskUUID": record.task_uuid,
            "request": [record.request],
            "response": response,
            "status": record.status,
            "attempts": record.attempts,
            # Where each result is: its stage (ltx_runtime.progress.STAGES) while processing, null once done.
            "results": [{"videoUUID": r.video_uuid, "status": r.status, "progress": r.progress, "stage": r.stage}
                        for r in record.results],  # fmt: skip
            "generation": {key: getattr(job, key) for key in GENERATION_FIELDS},
            "deliveries": [
                {key: getattr(d, key) for key in ("kind", "url", "state", "attempts", "last_status", "last_error")}
                for d in self.tasks.deliveries(record)
            ],
        }

    def _list_tasks(self, task: dict, session: Session) -> dict:
        """listTasks (this server's own task type): this key's videoInference tasks, newest first, `limit` (1-50,
        default 20) from `offset` (default 0); the playground's history reads it."""
        limit, offset = task.get("limit", 20), task.get("offset", 0)
        for name, value, low, high in (("limit", limit, 1, LIST_LIMIT_MAX), ("offset", offset, 0, LIST_OFFSET_MAX)):
            if type(value) is not int or not low <= value <= high:
                bounds = f"from {low} to {high}"
                raise ContractError("invalidParameter", f"{name} must be an integer {bounds}", parameter=name)
        records = self.tasks.list_tasks(session.key_id, VIDEO_INFERENCE, limit + 1, offset)
        return {
            "taskType": "listTasks",
            "tasks": [self._summary(record) for record in records[:limit]],
            "offset": offset,
            "more": len(records) > limit,
        }

    def _summary(self, record: TaskRecord) -> dict[str, Any]:
        """One task of listTasks: what was asked (the request as sent, and the sizes the worker used), its status and
        its results."""
        job = record.job
        summary = {
            "taskUUID": record.task_uuid,
            "status": record.status,
            "request": record.request,
            "generation": {key: job[key] for key in ("model", "width", "height", "duration", "fps", "audio")},
            "createdAt": record.created_at,
            "seconds": record.finished_at - record.started_at if record.finished_at and record.started_at else None,
            "results": [
                {"videoUUID": r.video_uuid, "status": r.status, "seed": r.seed, "cost": r.cost,
                 "videoURL": self.tasks.media_url(r)}
                for r in record.results
            ],  # fmt: skip
        }
        if record.status in UNSUCCESSFUL:
            summary["error"] = self._failure(record).item()
        return summary

    def _image_upload(self, task: dict, session: Session) -> dict:
        task_uuid = task.get("taskUUID")
        image = task.get("image")
        if not isinstance(image, str) or not image:
            raise ContractError("missingImage", "image is required: a data URI or base64 data", parameter="image")
        if image.startswith(("http://", "https://")):
            raise ContractError(
                "unsupportedParameter", "imageUpload takes a data URI or base64 data here, not a URL", parameter="image"
            )
        try:
            image_uuid = self.tasks.upload_image(session.key_id, image)
        except TaskError as error:
            if error.kind is not ErrorKind.INVALID_IMAGE:  # the server's disk or store (507, 503)
                raise contract_error(error, "image") from None
            raise ContractError("invalidImage", error.message, parameter="image") from None
        item = {"taskType": "imageUpload", "imageUUID": image_uuid, "imageURL": self.tasks.image_url(image_uuid)}
        if isinstance(task_uuid, str):
            item["taskUUID"] = task_uuid
        return item


def invalid_key_error(task: Any = None) -> ContractError:
    """A wrong key: from an authentication task (`task` None), Runware's error of that task, with no taskUUID; from
    the header, with the taskType and taskUUID of the body's first task (README: every error names its task), or
    as an authentication error when there is none to read."""
    error = with_task_ids(ContractError("invalidApiKey", INVALID_KEY_MESSAGE, parameter="apiKey", status=401), task)
    error.task_type = error.task_type or "authentication"
    return error


def missing_key_error(task: Any = None) -> ContractError:
    error = ContractError(
        "missingApiKey", "authenticate first: an Authorization: Bearer header or an authentication task",
        parameter="apiKey", status=401,
    )  # fmt: skip
    return with_task_ids(error, task)


def with_task_ids(error: ContractError, task: Any) -> ContractError:
    """The error with the taskType and taskUUID of the task it answers, when the task has them (README: every
    error names its task); an authentication error carries no taskUUID."""
    if isinstance(task, dict):
        error.task_type = error.task_type or _string(task.get("taskType"))
        if error.task_type != "authentication":
            error.task_uuid = error.task_uuid or _string(task.get("taskUUID"))
    return error


def _item(record: TaskRecord, result: ResultRecord, **fields: Any) -> dict[str, Any]:
    return {"taskType": record.task_type, "taskUUID": record.task_uuid, "videoUUID": result.video_uuid, **fields}


def _body_error(message: str) -> ContractError:
    return ContractError("invalidRequestBody", message, parameter="body")


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None
