"""The runtime's own job type and error kinds: what the task service, the store and the workers speak.

No contract (Runware, RunComfy) appears here: each adapter validates its wire request into a `Job` and maps an
`ErrorKind` to its own wire codes. To add a job field, add it to `Job` with a default: it is stored as JSON
(`to_dict`/`from_record`), and a job stored before the field existed gets the default; a field the engine takes is
mapped in `generation_request` (tests/unit/test_jobs.py fails until a new field is mapped there or listed as not the
engine's).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any, Callable

from ltx_runtime.request import MAX_SEED, GenerationRequest, Keyframe, SafetyRequest
from ltx_runtime.media import QUALITY_DEFAULT, OutputFormat

from ..store.records import TaskRecord

MAX_RANDOM_SEED = 2**53 - 1
"""Random seeds stay within JavaScript's exact integers, so that a JS client can send a seed back unchanged."""


@dataclass
class Job:
    """One validated generation request: everything a worker needs, JSON-serialisable."""

    model: str
    prompt: str
    width: int | None
    """None until a frame image decides it (LTX-2.3 without a size takes the image's orientation)."""
    height: int | None
    duration: float | None
    """Seconds; None: the model's duration head picks them when the job runs (LTX-2.5)."""
    fps: int
    audio: bool
    seeds: list[int]
    """One seed per result; a job makes len(seeds) videos. Stored once, in the task's results rows (one each), not in
    the job's JSON."""
    output_format: str = OutputFormat.MP4.value
    quality: int = QUALITY_DEFAULT
    ttl: int | None = None
    """Seconds the results stay downloadable; None: the server's default."""
    webhook_url: str | None = None
    upload_endpoint: str | None = None
    frame_images: list[dict[str, Any]] | None = None
    """The images the clip shows at given frames, each {"image": the reference as sent (an imageUUID, a URL, a data
    URI or base64; the service resolves it), "frame": a 0-based frame index or "last", "file": the resolved image's
    file name in the images folder, once it is local}."""
    audio_input: str | None = None
    """Audio-to-video: the input audio as sent (a URL, a data URI or base64; its stored id once kept)."""
    audio_input_file: str | None = None
    """The input audio's file name in the images folder (a task's inputs live there), once it is local."""
    steps: int | None = None
    """Guided models: stage-1 steps (None: the official count)."""
    cfg_scale: float | None = None
    """Guided models: the video CFG scale (None: the official one)."""
    negative_prompt: str | None = None
    """Guided models: the negative prompt (None: the official one)."""
    loras: list[tuple[str, float]] | None = None
    """(LoRA id, weight) pairs for this job only."""
    safety: SafetyRequest = SafetyRequest()
    """The content checks (output mode none/fast/full, check_inputs), the operator's requirement
    (`Settings.require_safety`) included: added once, when the task is accepted, and run as accepted."""

    @property
    def number_results(self) -> int:
        return len(self.seeds)

    @property
    def image_urls(self) -> list[str]:
        """The frame images that still have to be fetched from the network."""
        return [item["image"] for item in self.frame_images or ()
                if "file" not in item and item["image"].startswith(("http://", "https://"))]  # fmt: skip

    @property
    def audio_url(self) -> str | None:
        """The input audio when it still has to be fetched from the network."""
        if self.audio_input and self.audio_input.startswith(("http://", "https://")) and not self.audio_input_file:
            return self.audio_input
        return None

    def deliveries(self) -> list[tuple[str, str]]:
        """(kind, url) of each place a finished result is sent to."""
        targets = (("webhook", self.webhook_url), ("upload", self.upload_endpoint))
        return [(kind, url) for kind, url in targets if url]

    def generation_request(self, seed: int, read_input: Callable[[str], bytes]) -> GenerationRequest:
        """What the engine generates for the result of `seed`; `read_input` gives the bytes of an input file the job
        names (a frame image's, the input audio's). A duration of None is the duration head's to pick."""
        return GenerationRequest(
            model=self.model,
            prompt=self.prompt,
            width=self.width,
            height=self.height,
            duration=self.duration,
            fps=self.fps,
            audio=self.audio,
            seed=seed,
            output_format=OutputFormat(self.output_format),
            quality=self.quality,
            keyframes=tuple(Keyframe(read_input(item["file"]), item["frame"]) for item in self.frame_images or ()),
            audio_input=read_input(self.audio_input_file) if self.audio_input_file else None,
            steps=self.steps,
            guidance_scale=self.cfg_scale,
            negative_prompt=self.negative_prompt,
            loras=tuple((lora_id, weight) for lora_id, weight in self.loras or ()),
        )

    def log_fields(self) -> dict[str, Any]:
        """What a task event says about the clip asked for: model, size, duration, fps, results."""
        size = f"{self.width}x{self.height}" if self.width else None
        return {"model": self.model, "size": size, "duration": self.duration, "fps": self.fps,
                "results": self.number_results or None}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The job's JSON, as the task store keeps it: every field but the seeds (the results rows hold those)."""
        data = {**asdict(self), "safety": self.safety.to_dict()}
        del data["seeds"]
        return data

    @classmethod
    def from_record(cls, record: TaskRecord) -> "Job":
        """A stored task's job: its JSON, with the seeds of its results."""
        data = {**record.job, "seeds": [result.seed for result in record.results],
                "safety": SafetyRequest.from_dict(record.job.get("safety"))}  # fmt: skip
        return cls(**{field.name: data[field.name] for field in fields(cls) if field.name in data})


def job_seeds(seed: int | None, count: int) -> list[int]:
    """One distinct seed per result: the given seed and the ones after it, or random ones."""
    if seed is None:
        return random.sample(range(1, MAX_RANDOM_SEED + 1), count)
    return [(seed + i) % (MAX_SEED + 1) for i in range(count)]


class ErrorKind(str, Enum):
    """Why a task could not be submitted, read, cancelled or run. Stored with failed tasks; adapters map each one
    to their wire codes."""

    INVALID_IMAGE = "invalid_image"
    """A frame image is missing, unreadable, too large, placed past the clip, or its URL could not be fetched."""
    INVALID_AUDIO = "invalid_audio"
    """The input audio (audio-to-video) is unreadable, empty, too long or too large, or its URL could not be fetched."""
    TOO_LARGE = "too_large"
    """The clip needs more GPU memory than any worker's budget."""
    QUEUE_FULL = "queue_full"
    """This API key already has its maximum of unfinished tasks."""
    DUPLICATE = "duplicate"
    """This API key already submitted a task with this id."""
    NOT_FOUND = "not_found"
    FINISHED = "finished"
    """The task has already finished (so it cannot be cancelled)."""
    CANCELLED = "cancelled"
    INVALID_REQUEST = "invalid_request"
    """The engine refused a request that passed validation (a catalog rule the adapter did not check)."""
    OUT_OF_MEMORY = "out_of_memory"
    MODEL_UNAVAILABLE = "model_unavailable"
    """The model's weights are missing or do not match weights.lock."""
    CHECK_UNAVAILABLE = "check_unavailable"
    """The task needs a content check and the content classifier is not installed."""
    CONTENT_FLAGGED = "content_flagged"
    """The content check flagged a frame image or the output; nothing is served."""
    GENERATION_FAILED = "generation_failed"
    WORKER_LOST = "worker_lost"
    """The worker died (or hung, and its supervisor killed it) while running the task, max_attempts times."""
    STORAGE_FULL = "storage_full"
    """The disk the videos are written to is full; the task failed and nothing of it is served."""
    STORE_UNAVAILABLE = "store_unavailable"
    """The task store or the data folder cannot be written (locked past its busy timeout, read-only, deleted);
    nothing was stored; retry later."""
    SHUTTING_DOWN = "shutting_down"
    """The server is draining before it stops and takes no new tasks; retry on another instance or later."""

    @classmethod
    def of(cls, value: str | None) -> "ErrorKind":
        """The kind stored with a failed task (GENERATION_FAILED for one this version does not know)."""
        try:
            return cls(value)
        except ValueError:
            return cls.GENERATION_FAILED


class TaskError(Exception):
    """A refusal of the task service; `parameter` names the job field at fault where there is one."""

    def __init__(self, kind: ErrorKind, message: str, parameter: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.parameter = parameter
