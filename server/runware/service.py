"""What each Runware task type does; the transports (REST, WebSocket) only move JSON in and out of `handle`."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from ltx_runtime.catalog import get_model
from ltx_runtime.engine import MemoryLimitError, check_memory
from ltx_runtime.geometry import plan_generation
from ltx_runtime.memory import MemoryProfile

from ..auth import ApiKeys
from ..logs import job_fields, task_event
from ..netguard import BlockedURLError, FetchError
from ..settings import Settings
from ..tasks import DuplicateTask, ResultRecord, SQLiteTaskStore, TaskRecord
from .protocol import ContractError, Reply
from .validation import TASK_TYPE as VIDEO_INFERENCE
from .validation import VideoJob, validate_video_inference

INVALID_KEY_MESSAGE = "Invalid API key. Check the key configured for this ltx-runtime server."
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class Session:
    """One REST request or one WebSocket connection."""

    key_id: str | None = None
    connection_uuid: str | None = None
    sent_successes: set[str] = field(default_factory=set)
    """videoUUIDs already reported as success on this WebSocket (see _get_response)."""
    websocket: bool = False


class RunwareService:
    def __init__(self, settings: Settings, store: SQLiteTaskStore, keys: ApiKeys):
        self.settings = settings
        self.store = store
        self.keys = keys

    async def handle(self, tasks: Any, session: Session) -> Reply:
        reply = Reply()
        if not isinstance(tasks, list):
            reply.errors.append(ContractError("invalidRequestBody", "the body must be a JSON array of task objects"))
            return reply
        for task in tasks:
            try:
                reply.extend(await self._handle_one(task, session))
            except ContractError as error:
                if isinstance(task, dict):
                    error.task_type = error.task_type or _string(task.get("taskType"))
                    if error.task_type != "authentication":
                        error.task_uuid = error.task_uuid or _string(task.get("taskUUID"))
                reply.errors.append(error)
        return reply

    async def _handle_one(self, task: Any, session: Session) -> Reply:
        if not isinstance(task, dict):
            raise ContractError("invalidRequestBody", "each task must be a JSON object")
        task_type = task.get("taskType")
        if task_type == "authentication":
            return Reply(data=[self._authenticate(task, session)])
        if task_type is None:
            raise ContractError("missingTaskType", "taskType is required", parameter="taskType")
        if session.key_id is None:
            raise ContractError(
                "missingApiKey", "authenticate first: an Authorization: Bearer header or an authentication task",
                parameter="apiKey", status=401,
            )  # fmt: skip
        if task_type == "ping":
            return Reply(data=[{"taskType": "ping", "pong": True}])
        if task_type == VIDEO_INFERENCE:
            return Reply(data=[self._submit(task, session)])
        if task_type == "getResponse":
            return self._get_response(task, session)
        if task_type == "imageUpload":
            return Reply(data=[self._image_upload(task, session)])
        if task_type == "getTaskDetails":
            return Reply(data=[self._task_details(task, session)])
        raise ContractError(
            "invalidTaskType",
            f"unknown taskType {task_type!r}; this server handles authentication, ping, videoInference, getResponse, "
            "imageUpload and getTaskDetails",
            parameter="taskType",
        )

    def _authenticate(self, task: dict, session: Session) -> dict:
        key_id = self.keys.identify(task.get("apiKey"))
        if key_id is None:
            raise ContractError(
                "invalidApiKey", INVALID_KEY_MESSAGE, parameter="apiKey", status=401, task_type="authentication"
            )
        session.key_id = key_id
        if session.websocket:
            resumed = task.get("connectionSessionUUID")
            session.connection_uuid = resumed if isinstance(resumed, str) and resumed else str(uuid.uuid4())
            return {"taskType": "authentication", "connectionSessionUUID": session.connection_uuid}
        return {"taskType": "authentication"}

    def _submit(self, task: dict, session: Session) -> dict:
        job = validate_video_inference(task, demo=self.settings.demo)
        # Local images (an imageUUID, a data URI, base64) are checked now; a URL is fetched after the ack
        # (status "preparing"), so that a slow or unreachable host never delays the ack.
        fetch_later = job.frame_image is not None and job.frame_image.startswith(("http://", "https://"))
        if job.frame_image is not None and not fetch_later:
            try:
                self.attach_image(job, self._local_image(job.frame_image, session))
            except ContractError as error:
                raise ContractError(
                    "invalidFrameImages", error.message, parameter="inputs.frameImages",
                    task_type=VIDEO_INFERENCE, task_uuid=task["taskUUID"],
                ) from None  # fmt: skip
        self._check_memory(job)
        if self.store.pending_count(session.key_id) >= self.settings.max_pending_per_key:
            raise ContractError(
                "rateLimitExceeded",
                f"this API key already has {self.settings.max_pending_per_key} tasks queued or running; retry later",
                status=429,
            )
        try:
            self.store.submit(
                session.key_id, task["taskUUID"], VIDEO_INFERENCE, task, job.to_dict(), job.seeds,
                status="preparing" if fetch_later else "queued",
            )  # fmt: skip
        except DuplicateTask:
            raise ContractError(
                "conflictTaskUUID", "a task with this taskUUID was already submitted", parameter="taskUUID"
            ) from None
        task_event("accepted", task["taskUUID"], key=session.key_id, **job_fields(job.to_dict()))
        # The ack carries nothing else: the Python SDK treats a videoUUID or a status here as finished results.
        return {"taskType": VIDEO_INFERENCE, "taskUUID": task["taskUUID"]}

    def _check_memory(self, job: VideoJob) -> None:
        """Admission control: refuse now what no ready worker's GPU memory budget can hold. Until the workers have
        reported (and for a size still to be taken from an image URL), each worker checks before it starts."""
        workers = [worker for worker in self.store.workers() if worker["state"] == "ready"]
        if job.width is None or not workers or any(worker["memory_budget"] is None for worker in workers):
            return
        spec = get_model(job.model)
        plan = plan_generation(job.width, job.height, job.duration, job.fps, spec.audio_sample_rate)
        refusals = []
        for worker in workers:
            try:
                check_memory(spec, plan, MemoryProfile(worker["memory_profile"]), worker["memory_budget"])
                return
            except MemoryLimitError as error:
                refusals.append(str(error))
        raise ContractError("unsupportedDimensions", refusals[0], parameter="width")

    def _find(self, task: dict, session: Session) -> TaskRecord:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str):
            raise ContractError("missingTaskUUID", "taskUUID is required", parameter="taskUUID")
        record = self.store.get(session.key_id, task_uuid)
        if record is None:
            raise ContractError("taskNotFound", self._not_found_message(task_uuid), parameter="taskUUID", status=404)
        return record

    def _not_found_message(self, task_uuid: str) -> str:
        message = f"no task {task_uuid} for this API key: a task is visible only to the API key that submitted it"
        if self.keys.accept_any:
            message += " (in demo mode any key is accepted, and each key sees only its own tasks)"
        return message

    def _get_response(self, task: dict, session: Session) -> Reply:
        """One item per requested result: processing (with its pre-allocated videoUUID and progress) or success.

        The Python SDK 0.5.24 adds up success items over polls, so a cumulative reply hands it the same video twice
        when numberResults > 1. On a WebSocket, a success is therefore sent once per connection; until every result
        has been sent, a result already sent is repeated as processing at 100 %, which keeps the SDK's count of
        items right without counting the video again. REST replies are always cumulative.
        """
        record = self._find(task, session)
        if record.status == "failed":
            return Reply(errors=[ContractError(
                record.error_code or "inferenceError", record.error_message or "generation failed",
                task_type=record.task_type, task_uuid=record.task_uuid, status=500,
            )])  # fmt: skip
        items = []
        all_sent = all(r.video_uuid in session.sent_successes for r in record.results)
        for result in record.results:
            repeat = session.websocket and not all_sent and result.video_uuid in session.sent_successes
            if result.status == "success" and not repeat:
                items.append(self.result_item(record, result))
                if session.websocket:
                    session.sent_successes.add(result.video_uuid)
            else:
                items.append(_item(record, result, status="processing", progress=result.progress))
        return Reply(data=items)

    def result_item(self, record: TaskRecord, result: ResultRecord) -> dict[str, Any]:
        """A finished result as getResponse and webhooks report it."""
        item = _item(record, result, status="success", videoURL=self.video_url(result.file_name), seed=result.seed)
        if record.job["include_cost"]:
            item["cost"] = result.cost
        return item

    def video_url(self, file_name: str | None) -> str:
        return f"{self.settings.base_url}/media/{file_name}"

    def _task_details(self, task: dict, session: Session) -> dict:
        record = self._find(task, session)
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
            # What the worker generates, with defaults and image-derived sizes filled in.
            "generation": {key: record.job[key] for key in ("model", "width", "height", "duration", "fps", "audio", "seeds")},
            "deliveries": [
                {key: row[key] for key in ("kind", "url", "state", "attempts", "last_status", "last_error")}
                for row in self.store.deliveries_of(record.id)
            ],
        }

    def _local_image(self, reference: str, session: Session) -> bytes:
        """The bytes of an imageUUID from imageUpload, a data URI or base64 data."""
        if UUID_PATTERN.match(reference):
            file_name = self.store.image_file(session.key_id, reference)
            if file_name is None:
                raise ContractError("invalidImage", f"no uploaded image {reference} for this API key")
            return (self.settings.images_dir / file_name).read_bytes()
        return decode_image_data(reference, self.settings.max_image_bytes)

    def attach_image(self, job: VideoJob, data: bytes) -> None:
        """Check an image, keep it in the images folder and point the job at it; LTX-2.3 without a size takes the
        1080p size of the image's orientation."""
        width, height = check_image(data, self.settings.max_image_pixels)
        file_name = f"frame-{uuid.uuid4()}"
        self.settings.images_dir.mkdir(parents=True, exist_ok=True)
        (self.settings.images_dir / file_name).write_bytes(data)
        job.frame_image_file = file_name
        if job.width is None:
            job.width, job.height = (1080, 1920) if height > width else (1920, 1080)

    async def prepare(self, record: TaskRecord, client) -> None:
        """Fetch a task's first-frame image URL through the guarded client, then queue the task (or fail it)."""
        job = VideoJob.from_dict(record.job)
        try:
            data, _ = await client.get_bytes(job.frame_image)
            self.attach_image(job, data)
        except ContractError as error:
            self._fail_preparing(record, f"inputs.frameImages: {error.message}")
        except (BlockedURLError, FetchError) as error:
            # Say what happened, never what the remote host answered.
            self._fail_preparing(record, f"inputs.frameImages could not be fetched: {error}")
        else:
            self.store.prepared(record.id, job.to_dict())

    def _fail_preparing(self, record: TaskRecord, message: str) -> None:
        self.store.fail(record.id, "invalidFrameImages", message)
        task_event("failed", record.task_uuid, level=logging.WARNING, key=record.key_id, code="invalidFrameImages",
                   error=message)  # fmt: skip

    def _image_upload(self, task: dict, session: Session) -> dict:
        task_uuid = task.get("taskUUID")
        image = task.get("image")
        if not isinstance(image, str) or not image:
            raise ContractError("missingImage", "image is required: a data URI or base64 data", parameter="image")
        if image.startswith(("http://", "https://")):
            raise ContractError(
                "unsupportedParameter", "imageUpload takes a data URI or base64 data here, not a URL", parameter="image"
            )
        data = decode_image_data(image, self.settings.max_image_bytes)
        check_image(data, self.settings.max_image_pixels)
        image_uuid = str(uuid.uuid4())
        self.settings.images_dir.mkdir(parents=True, exist_ok=True)
        (self.settings.images_dir / image_uuid).write_bytes(data)
        self.store.put_image(session.key_id, image_uuid, image_uuid)
        item = {"taskType": "imageUpload", "imageUUID": image_uuid, "imageURL": f"{self.settings.base_url}/images/{image_uuid}"}
        if isinstance(task_uuid, str):
            item["taskUUID"] = task_uuid
        return item


def decode_image_data(image: str, max_bytes: int) -> bytes:
    """A data URI or bare base64 string to bytes, refusing oversize input before decoding it."""
    payload = image.split(",", 1)[1] if image.startswith("data:") else image
    if len(payload) * 3 // 4 > max_bytes:
        raise ContractError("invalidImage", f"the image is larger than {max_bytes} bytes", parameter="image")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError("invalidImage", "the image is not valid base64 data", parameter="image") from None


def image_content_type(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as opened:
        return Image.MIME[opened.format]


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Open the image far enough to read its size; refuse non-images, other formats and decompression bombs."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as opened:
            width, height = opened.size
    except (UnidentifiedImageError, OSError):
        raise ContractError("invalidImage", "the image is not a PNG, JPEG or WEBP file", parameter="image") from None
    if width * height > max_pixels:
        raise ContractError("invalidImage", f"the image has {width}x{height} pixels, over {max_pixels}", parameter="image")
    return width, height


def _item(record: TaskRecord, result: ResultRecord, **fields: Any) -> dict[str, Any]:
    return {"taskType": record.task_type, "taskUUID": record.task_uuid, "videoUUID": result.video_uuid, **fields}


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None
