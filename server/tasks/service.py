"""The task service: what every contract adapter does with a job, in the runtime's own terms.

It submits (idempotent per API key and task id), admits (GPU memory, per-key limits), reads, lists, cancels and
prepares tasks (fetching frame image URLs), keeps uploaded images in the media store, and finds the results a
resuming session has not been sent. It raises `TaskError` with an `ErrorKind`; it knows no wire format, and imports
no adapter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import re
import uuid
from contextlib import contextmanager

from ltx_runtime.admission import (
    MemoryLimitError, MemoryProfile, check_memory, choose_profile, frame_image_load, missing_files,
)  # fmt: skip
from ltx_runtime.audio_input import MAX_AUDIO_BYTES
from ltx_runtime.catalog import choose_video_decoder, get_model
from ltx_runtime.configs import DURATION_SECONDS
from ltx_runtime.geometry import plan_generation
from ltx_runtime.loras import read_loras
from ltx_runtime.progress import cpu_stage_seconds
from ltx_runtime.request import RequestError, SafetyMode, check_audio_input

from ..logs import task_event
from .jobs import ErrorKind, Job, TaskError
from ..media.store import (
    LocalMediaStore,
    MediaNotFound,
    MediaStore,
    disk_full,
    image_key,
    media_key,
    probe_writable,
)
from ..media.netguard import BlockedURLError, FetchError
from ..settings import Settings
from ..store.records import (
    DeliveryStatus,
    DuplicateTask,
    QueueFull,
    ResultRecord,
    StoredImage,
    TaskRecord,
    TaskStatus,
    TaskStore,
    live_workers,
)

log = logging.getLogger("ltx_runtime.server")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
SLOW_DEMO_SECONDS = 60.0
"""A demo clip estimated to take longer than this on the CPU is announced as slow (`TaskService.demo_note`)."""
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class TaskService:
    def __init__(self, settings: Settings, store: TaskStore, media: MediaStore):
        self.settings = settings
        self.store = store
        self.media = media
        self.draining = False
        """Set when the server starts draining before it stops: new tasks are refused."""
        self.loras = read_loras(settings.weights_lock, settings.loras)
        """The LoRAs tasks may name (weights.lock and LTX_LORAS), checked before a task is acknowledged."""

    # -- submit and admit ---------------------------------------------------------------------------------------

    def submit(
        self, key_id: str, task_id: str, task_type: str, request: dict, job: Job, session_uuid: str | None = None
    ) -> TaskRecord:
        """Admit and queue a job. Local images (an imageUUID, a data URI, base64) and input audio (a data URI, base64)
        are checked now; image and audio URLs are fetched after the reply (status "preparing", see `prepare`), so a
        slow host never delays it."""
        if self.draining:
            raise TaskError(
                ErrorKind.SHUTTING_DOWN, "the server is shutting down and takes no new tasks; retry on another instance"
            )
        with self.storage_errors():
            self.check_storage()
            images, audio = [], None
            try:
                for item in job.frame_images or ():
                    if item["image"].startswith(("http://", "https://")):
                        continue
                    images.append(image := self.attach_image(job, item, self._local_image(key_id, item["image"])))
                    if not UUID_PATTERN.match(item["image"]):  # image data: kept once, as the image, never echoed
                        request = replace_value(request, item["image"], image.image_uuid)
                        item["image"] = image.image_uuid
                if job.audio_input is not None and job.audio_url is None:
                    audio = self.attach_audio(job, decode_data(job.audio_input, MAX_AUDIO_BYTES, ErrorKind.INVALID_AUDIO,
                                                               "audio", "audio_input"))  # fmt: skip
                    request = replace_value(request, job.audio_input, audio.image_uuid)  # kept once, never echoed
                    job.audio_input = audio.image_uuid
                self._check_safety(job)
                self._check_memory(job)
                record = self.store.submit(
                    key_id, task_id, task_type, request, job.to_dict(), job.seeds,
                    status=TaskStatus.PREPARING if job.image_urls or job.audio_url else TaskStatus.QUEUED,
                    session_uuid=session_uuid, max_pending=self.settings.max_pending_per_key, images=images, audio=audio,
                )  # fmt: skip
            except BaseException:
                self._delete_inputs([*images, *([audio] if audio else [])])  # refused: its inputs go too
                raise
        task_event("accepted", task_id, key=key_id, **job.log_fields())
        if note := self.demo_note(job):
            task_event("slow_demo", task_id, level=logging.WARNING, note=note)
        return record

    def check_storage(self) -> None:
        """Raise (a store error or an OSError) unless the task store is the one opened and the data folders take a
        small file: refused at once (507 storageFull, 503) rather than accepted and lost or failed later."""
        self.store.check()
        folders = [self.settings.data_dir]
        if isinstance(self.media, LocalMediaStore):
            folders += [self.media.root / "media", self.media.root / "images"]
        for folder in folders:
            probe_writable(folder)

    @contextmanager
    def storage_errors(self):
        """A failing store or disk as a `TaskError`: STORAGE_FULL (507) when a disk is full, else STORE_UNAVAILABLE
        (503); refusals of the store itself (a duplicate, a full queue) as theirs."""
        try:
            yield
        except DuplicateTask as error:
            raise TaskError(ErrorKind.DUPLICATE, f"a task with the id {error} was already submitted") from None
        except QueueFull as error:
            raise TaskError(
                ErrorKind.QUEUE_FULL, f"this API key already has {error} tasks queued or running; retry later"
            ) from None
        except (OSError, *self.store.errors) as error:
            if disk_full(error):
                log.error("storage full: %s: %s", type(error).__name__, error)
                raise TaskError(ErrorKind.STORAGE_FULL, "the server's disk is full; nothing was stored; retry later "
                                "(operator: free space in the data folder)") from None  # fmt: skip
            log.error("storage unavailable: %s: %s", type(error).__name__, error)
            raise TaskError(ErrorKind.STORE_UNAVAILABLE, "the server cannot store tasks or images right now "
                            f"({type(error).__name__}); nothing was stored; retry later") from None  # fmt: skip

    def demo_note(self, job: Job) -> str | None:
        """In demo mode, what a clip that takes minutes on the CPU should be told up front (the ack, getResponse, the
        log, the page): the estimate from the rates measured on tiny weights. None for quick clips, and off demo."""
        if not self.settings.demo or not job.width or job.duration is None:
            return None  # off demo, a size still to come from an image, or a duration the head has yet to pick
        frames = round(job.duration * job.fps)
        per_result = sum(cpu_stage_seconds(job.width, job.height, frames).values())
        seconds = per_result * job.number_results
        if seconds < SLOW_DEMO_SECONDS:
            return None
        return (
            f"demo mode: tiny random weights on a CPU, where a {job.width}x{job.height} clip of "
            f"{job.duration:g} s at {job.fps} fps takes minutes: about {seconds / 60:.0f} min on 2 cores "
            f"(estimated from measured rates; more under load). 256x144 for 2 s takes seconds."
        )

    def _check_safety(self, job: Job) -> None:
        """Add the server's required content checks to the job, and refuse now a task that needs a check this server
        cannot make: it is never answered unchecked. This is the one place the requirement is applied: the job
        carries its checks as accepted, so a task queued before `require_safety` was set runs without it."""
        job.safety = job.safety.at_least(SafetyMode(self.settings.require_safety))
        if not job.safety.active or self.settings.tiny_safety_checker:
            return
        missing = missing_files(self.settings.safety_folder)
        if missing:
            log.error("content classifier missing in %s: %s", self.settings.safety_folder, ", ".join(missing))
            required = self.settings.require_safety != "none"
            asked = "this server requires a content check" if required else "the task asks for a content check"
            raise TaskError(
                ErrorKind.CHECK_UNAVAILABLE,
                f"{asked}, and the content classifier is not installed on this server, so the task was not accepted "
                f"(operator: run `ltx-runtime weights pull safety-checker`, or set LTX_SAFETY_WEIGHTS)",
                parameter="safety",
            )

    def _check_memory(self, job: Job) -> None:
        """Admission control: refuse now what no ready worker's GPU memory budget can hold. Until the workers have
        reported (and for a size still to be taken from an image URL), each worker checks before it starts."""
        workers = [worker for worker in live_workers(self.store.workers(), self.store.now()) if worker.state == "ready"]
        if job.width is None or not workers or any(worker.memory_budget is None for worker in workers):
            return
        spec = get_model(job.model)
        # Without a duration (the duration head picks it on the worker): what cannot fit even at its shortest pick.
        duration = job.duration if job.duration is not None else DURATION_SECONDS[0]
        plan = plan_generation(job.width, job.height, duration, job.fps, spec.audio_sample_rate)
        refusals = []
        for worker in workers:
            try:
                # LTX-2.5's decoder: this node's LTX_VIDEO_DECODER (set as on the workers), `auto` by the budget
                decoder = choose_video_decoder(self.settings.video_decoder, worker.memory_budget is not None)
                if worker.memory_profile == "auto":  # the worker picks per model, as choose_profile does here
                    profile = choose_profile(spec, worker.memory_budget, decoder)
                else:
                    profile = MemoryProfile(worker.memory_profile)
                check_memory(spec, plan, profile, worker.memory_budget, video_decoder=decoder,
                             **frame_image_load(item["frame"] for item in job.frame_images or ()))  # fmt: skip
                return
            except MemoryLimitError as error:
                refusals.append(str(error))
        raise TaskError(ErrorKind.TOO_LARGE, refusals[0], parameter="width")

    # -- read, list, cancel -------------------------------------------------------------------------------------

    def get(self, key_id: str, task_id: str) -> TaskRecord:
        record = self.store.get(key_id, task_id)
        if record is None:
            raise TaskError(ErrorKind.NOT_FOUND, not_found_message(task_id))
        return record

    def list_tasks(self, key_id: str, task_type: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]:
        return self.store.list_tasks(key_id, task_type, limit, offset)

    def queue_position(self, record: TaskRecord) -> int:
        return self.store.queue_position(record.id)

    def cancel(self, key_id: str, task_id: str) -> TaskRecord:
        """Cancel a task that has not finished: a waiting one at once, a running one within one denoising step (its
        worker stops, removes the partial file and takes the next task)."""
        record = self.get(key_id, task_id)
        if self.store.cancel(record.id) is None:
            raise TaskError(ErrorKind.FINISHED, f"task {task_id} has already finished ({record.status})")
        for file_name in self.store.take_result_files(record.id):  # a cancelled task serves nothing it made
            self.media.delete(media_key(file_name))
        task_event("cancel_requested", task_id, key=key_id, was=record.status)
        return self.store.get_by_id(record.id)

    def deliveries(self, record: TaskRecord) -> list[DeliveryStatus]:
        """The webhook and upload deliveries of a task's results, with their state."""
        return self.store.deliveries_of(record.id)

    # -- session replay -----------------------------------------------------------------------------------------

    def unreported(self, key_id: str, session_uuid: str) -> list[TaskRecord]:
        """Tasks of a session with results or an outcome it has not been sent, within the replay window."""
        return self.store.unreported(key_id, session_uuid, self.store.now() - self.settings.session_replay_seconds)

    def mark_reported(self, record: TaskRecord, indexes: list[int]) -> None:
        self.store.mark_reported(record.id, indexes)

    # -- images -------------------------------------------------------------------------------------------------

    def _local_image(self, key_id: str, reference: str) -> bytes:
        """The bytes of an imageUUID from an upload, a data URI or base64 data."""
        if UUID_PATTERN.match(reference):
            file_name = self.store.image_file(key_id, reference)
            if file_name is None:
                raise TaskError(ErrorKind.INVALID_IMAGE, f"no uploaded image {reference} for this API key", "image")
            try:
                return self.media.read_bytes(image_key(file_name))
            except MediaNotFound:
                raise TaskError(ErrorKind.INVALID_IMAGE, f"the uploaded image {reference} is gone", "image") from None
        return decode_image_data(reference, self.settings.max_image_bytes)

    def attach_image(self, job: Job, item: dict, data: bytes) -> StoredImage:
        """Check a frame image, keep it in the media store and point the job's `item` at it; LTX-2.3 without a size
        takes the 1080p size of the orientation of the first image attached. The caller records it in the task
        store, as the task's own image."""
        width, height = check_image(data, self.settings.max_image_pixels)
        image_uuid = str(uuid.uuid4())
        image = StoredImage(image_uuid, image_uuid, image_content_type(data))
        self.media.put_bytes(image_key(image.file_name), data, image.content_type)
        item["file"] = image.file_name
        if job.width is None:
            job.width, job.height = (1080, 1920) if height > width else (1920, 1080)
        return image

    def attach_audio(self, job: Job, data: bytes) -> StoredImage:
        """Check a task's input audio (readable, within the limits, a model and audio flag that take it), keep it in
        the media store with the task's inputs and point the job at it; the caller records it in the task store."""
        try:
            check_audio_input(get_model(job.model), job.audio, data)
        except RequestError as error:
            raise TaskError(ErrorKind.INVALID_AUDIO, str(error), "audio_input") from None
        audio_uuid = str(uuid.uuid4())
        stored = StoredImage(audio_uuid, audio_uuid, "application/octet-stream")
        self.media.put_bytes(image_key(stored.file_name), data, stored.content_type)
        job.audio_input_file = stored.file_name
        return stored

    def upload_image(self, key_id: str, image: str) -> str:
        """Keep an image sent as a data URI or base64 data; returns its imageUUID."""
        data = decode_image_data(image, self.settings.max_image_bytes)
        check_image(data, self.settings.max_image_pixels)
        image_uuid = str(uuid.uuid4())
        stored = StoredImage(image_uuid, image_uuid, image_content_type(data))
        with self.storage_errors():
            self.check_storage()
            self.media.put_bytes(image_key(image_uuid), data, stored.content_type)
            try:
                self.store.put_image(key_id, stored)
            except BaseException:
                self.media.delete(image_key(image_uuid))
                raise
        return image_uuid

    async def prepare(self, record: TaskRecord, client) -> None:
        """Fetch a task's frame image URLs and input audio URL through the guarded client, then queue the task (or
        fail it)."""
        job = Job.from_record(record)
        remote = [(False, url) for url in job.image_urls] + ([(True, job.audio_url)] if job.audio_url else [])
        fetched = []
        for is_audio, url in remote:
            try:
                fetched.append((await client.get_bytes(url))[0])
            except (BlockedURLError, FetchError) as error:
                # Say what happened, never what the remote host answered.
                kind, what = _INPUTS[is_audio]
                message = f"the {what} {url} could not be fetched: {error}"
                await asyncio.to_thread(self._fail_preparing, record, message, kind)
                return
        await asyncio.to_thread(self._attach_fetched, record, job, fetched)  # the store, off the event loop

    def _attach_fetched(self, record: TaskRecord, job: Job, fetched: list[bytes]) -> None:
        """Keep the fetched inputs (`fetched`: the bytes of each frame image URL in order, then of the audio URL if
        any) and queue the task, or fail it."""
        pending_images = [item for item in job.frame_images or () if "file" not in item]
        images, audio, what = [], None, "an input"
        try:
            for item, data in zip(pending_images, fetched):
                what = f"the frame image {item['image']}"
                images.append(self.attach_image(job, item, data))
            if job.audio_url:
                what = "the input audio"
                audio = self.attach_audio(job, fetched[-1])
            # The stored JSON keeps the fields of the adapter's own job type (Runware's include_cost).
            self.store.prepared(record.id, {**record.job, **job.to_dict()}, images, audio)
        except TaskError as error:  # not an input it takes: the task fails, and the inputs it fetched go
            self._delete_inputs([*images, *([audio] if audio else [])])
            self._fail_preparing(record, f"{what}: {error.message}", error.kind)
        except BaseException:  # the store failed: fetched again once the claim runs out
            self._delete_inputs([*images, *([audio] if audio else [])])
            raise

    def _delete_inputs(self, stored: list[StoredImage]) -> None:
        for item in stored:
            self.media.delete(image_key(item.file_name))

    def _fail_preparing(self, record: TaskRecord, message: str, kind: ErrorKind = ErrorKind.INVALID_IMAGE) -> None:
        self.store.fail(record.id, kind.value, message)
        task_event("failed", record.task_uuid, level=logging.WARNING, key=record.key_id, kind=kind.value,
                   error=message)  # fmt: skip

    # -- URLs of what the server hosts --------------------------------------------------------------------------

    def media_url(self, result: ResultRecord) -> str | None:
        """Where a finished result can be downloaded until its ttl passes (None once it has)."""
        if result.file_name is None:
            return None
        lifetime = (result.expires_at or 0) - self.store.now()  # the database's clock, which the ttl began on
        return self.media.url(media_key(result.file_name), lifetime)

    def image_url(self, image_uuid: str) -> str:
        return f"{self.settings.base_url}/images/{image_uuid}"


def replace_value(value, old: str, new: str):
    """`value` (JSON: dicts, lists, scalars) with every string equal to `old` replaced by `new`."""
    if isinstance(value, dict):
        return {key: replace_value(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_value(item, old, new) for item in value]
    return new if value == old else value


def not_found_message(task_id: str) -> str:
    return f"no task {task_id} for this API key: a task is visible only to the API key that submitted it"


_INPUTS = {False: (ErrorKind.INVALID_IMAGE, "frame image"), True: (ErrorKind.INVALID_AUDIO, "input audio")}
"""A task's fetched inputs by `is it the audio`: the error kind and the words of a failure."""


def decode_image_data(image: str, max_bytes: int) -> bytes:
    return decode_data(image, max_bytes, ErrorKind.INVALID_IMAGE, "image", "image")


def decode_data(value: str, max_bytes: int, kind: ErrorKind, what: str, parameter: str) -> bytes:
    """A data URI or bare base64 string to bytes, refusing oversize input before decoding it; a refusal is a
    TaskError of `kind` that calls the data `what`."""
    if value.startswith("data:"):
        _, comma, payload = value.partition(",")
        if not comma:
            raise TaskError(kind, "a data URI needs a comma before its data (data:...;base64,...)", parameter)
    else:
        payload = value
    if len(payload) * 3 // 4 > max_bytes:
        raise TaskError(kind, f"the {what} is larger than {max_bytes} bytes", parameter)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise TaskError(kind, f"the {what} is not valid base64 data", parameter) from None


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
        raise TaskError(ErrorKind.INVALID_IMAGE, "the image is not a PNG, JPEG or WEBP file", "image") from None
    except Image.DecompressionBombError:  # a header claiming far more pixels than Pillow's own limit
        raise TaskError(ErrorKind.INVALID_IMAGE, f"the image claims more than {max_pixels} pixels", "image") from None
    if width * height > max_pixels:
        raise TaskError(ErrorKind.INVALID_IMAGE, f"the image has {width}x{height} pixels, over {max_pixels}", "image")
    return width, height
