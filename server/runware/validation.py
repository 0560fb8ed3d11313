"""`videoInference` validation against the model catalog, turning the wire task into the runtime's `Job`.

Unknown parameters are refused as the hosted schema's `additionalProperties: false` says, except the few keys the
official SDKs add on their own (`SDK_EXTRAS`). Each refusal names the parameter with a dotted path
(`providerSettings.lightricks.generateAudio`, `inputs.frameImages`) and uses the SDKs' error-code families:
`missing*`, `invalid*`, `unsupported*` (runware-contract.md section 2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ltx_runtime.catalog import MODELS, ModelSpec
from ltx_runtime.media import QUALITY_DEFAULT, QUALITY_MAX, QUALITY_MIN, OutputFormat
from ltx_runtime.request import MAX_SEED, SafetyMode, SafetyRequest

from ..jobs import Job, job_seeds
from ..bodies import parameter_name, shown
from .protocol import ContractError

TASK_TYPE = "videoInference"
TOP_LEVEL = {
    "taskType", "taskUUID", "model", "positivePrompt", "width", "height", "duration", "fps", "seed",
    "numberResults", "outputType", "outputFormat", "outputQuality", "ttl", "deliveryMethod", "webhookURL",
    "uploadEndpoint", "includeCost", "safety", "inputs",
}  # fmt: skip
# Sent by the official SDKs on their own; accepted and ignored (runware-contract.md sections 3a and 5).
SDK_EXTRAS = {"customTaskUUID", "skipResponse", "retry"}
MAX_RESULTS = 4
MIN_TTL = 60


@dataclass
class VideoJob(Job):
    """A validated videoInference task: the runtime's job, plus how Runware presents its results."""

    include_cost: bool = False


class _Checker:
    """Small helpers that raise ContractError naming the parameter, with this task's type and UUID attached."""

    def __init__(self, task: dict[str, Any]):
        self.task = task
        uuid_value = task.get("taskUUID")
        self.task_uuid = uuid_value if isinstance(uuid_value, str) else None

    def fail(self, code: str, parameter: str, message: str) -> ContractError:
        return ContractError(code, message, parameter=parameter, task_type=TASK_TYPE, task_uuid=self.task_uuid)

    def missing(self, parameter: str, message: str) -> ContractError:
        name = parameter.rsplit(".", 1)[-1]
        return self.fail(f"missing{name[0].upper()}{name[1:]}", parameter, message)

    def invalid(self, parameter: str, message: str) -> ContractError:
        name = parameter.rsplit(".", 1)[-1]
        return self.fail(f"invalid{name[0].upper()}{name[1:]}", parameter, message)

    def unsupported(self, parameter: str, message: str) -> ContractError:
        return self.fail("unsupportedParameter", parameter, message)

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.task.get(name)
        if value is None:  # absent or null: the default (null numberResults once reached job_seeds as None)
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.invalid(name, f"{name} must be an integer from {low} to {high}, got {shown(value)}")
        return value

    def boolean(self, container: dict[str, Any], name: str, parameter: str, default: bool) -> bool:
        value = container.get(name, default)
        if not isinstance(value, bool):
            raise self.invalid(parameter, f"{parameter} must be true or false, got {shown(value)}")
        return value

    def only_keys(self, container: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in container:
            if key not in allowed:
                where = f"{prefix}.{parameter_name(key)}" if prefix else parameter_name(key)
                raise self.unsupported(where, f"{where} is not a parameter of this model")

    def object(self, name: str, parameter: str, container: dict[str, Any]) -> dict[str, Any]:
        value = container.get(name, {})
        if not isinstance(value, dict):
            raise self.invalid(parameter, f"{parameter} must be an object")
        return value

    def url(self, name: str) -> str | None:
        value = self.task.get(name)
        if value is None:
            return None
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.invalid(name, f"{name} must be an http(s) URL")
        return value


def validate_video_inference(task: dict[str, Any], *, demo: bool) -> VideoJob:
    check = _Checker(task)
    if check.task_uuid is None:
        raise check.missing("taskUUID", "taskUUID is required (a UUID v4 string)")
    try:
        uuid.UUID(check.task_uuid)
    except ValueError:
        raise check.invalid("taskUUID", f"taskUUID must be a UUID, got {shown(check.task_uuid)}") from None

    model_id = task.get("model")
    if model_id is None:
        raise check.missing("model", "model is required")
    spec = MODELS.get(model_id) if isinstance(model_id, str) else None
    if spec is None or (spec.demo_only and not demo):
        offered = ", ".join(m.id for m in MODELS.values() if demo or not m.demo_only)
        raise check.invalid("model", f"unknown model {shown(model_id)}; this server offers {offered}")

    if "frameImages" in task:
        raise check.unsupported("frameImages", "frameImages must be nested under inputs (inputs.frameImages)")
    audio_root = spec.audio_flag[0]
    check.only_keys(task, TOP_LEVEL | SDK_EXTRAS | {audio_root}, "")

    prompt = task.get("positivePrompt")
    if prompt is None:
        raise check.missing("positivePrompt", "positivePrompt is required")
    if not isinstance(prompt, str) or not 2 <= len(prompt) <= 10000:
        raise check.invalid("positivePrompt", "positivePrompt must be a string of 2 to 10000 characters")

    frame_image = _frame_image(check, task)
    width, height = _size(check, task, spec, frame_image is not None)
    fps = task.get("fps", spec.default_fps)
    if isinstance(fps, bool) or not isinstance(fps, int) or fps not in spec.fps_values:
        raise check.invalid("fps", f"{spec.id} takes fps {spec.describe_fps()}, got {shown(fps)}")
    duration = _duration(check, task, spec, width, height, fps)

    number_results = check.integer("numberResults", 1, 1, MAX_RESULTS)
    seed = check.integer("seed", None, 0, MAX_SEED)
    if task.get("outputType", "URL") != "URL":
        raise check.invalid("outputType", "outputType must be URL for video models")
    output_format = task.get("outputFormat", "MP4")
    if not isinstance(output_format, str) or output_format.upper() not in {"MP4", "WEBM", "MOV"}:
        raise check.invalid("outputFormat", f"outputFormat must be MP4, WEBM or MOV, got {shown(output_format)}")
    quality = check.integer("outputQuality", QUALITY_DEFAULT, QUALITY_MIN, QUALITY_MAX)
    ttl = check.integer("ttl", None, MIN_TTL, 2**31 - 1)
    if task.get("deliveryMethod", "async") != "async":
        raise check.invalid("deliveryMethod", "video models deliver asynchronously only: deliveryMethod must be async")
    include_cost = check.boolean(task, "includeCost", "includeCost", False)
    safety = _safety(check, task)

    return VideoJob(
        model=spec.id,
        prompt=prompt,
        width=width,
        height=height,
        duration=duration,
        fps=fps,
        audio=_audio(check, task, spec),
        seeds=job_seeds(seed, number_results),
        output_format=OutputFormat(output_format.lower()).value,
        quality=quality,
        ttl=ttl,
        include_cost=include_cost,
        webhook_url=check.url("webhookURL"),
        upload_endpoint=check.url("uploadEndpoint"),
        frame_image=frame_image,
        safety=safety.to_dict(),
    )


def _size(check: _Checker, task: dict, spec: ModelSpec, has_image: bool) -> tuple[int | None, int | None]:
    width, height = task.get("width"), task.get("height")
    if width is None and height is None:
        if has_image and spec.id == "lightricks:ltx@2.3":
            return None, None  # taken from the image's orientation once it is loaded
        if spec.id == "lightricks:ltx@2.3":
            raise check.missing("width", "LTX-2.3 needs width and height, or inputs.frameImages")
        return spec.default_size
    for name, value in (("width", width), ("height", height)):
        if value is None:
            other = "height" if name == "width" else "width"
            raise check.missing(name, f"{name} must be given together with {other}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise check.invalid(name, f"{name} must be an integer, got {shown(value)}")
    if not spec.allows_size(width, height):
        raise check.fail(
            "unsupportedDimensions", "width", f"{width}x{height} is not a size of {spec.id}; allowed: {spec.describe_sizes()}"
        )
    return width, height


def _duration(check: _Checker, task: dict, spec: ModelSpec, width: int | None, height: int | None, fps: int) -> float:
    duration = task.get("duration", spec.default_duration)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        allowed = spec.describe_durations()
        raise check.invalid("duration", f"{spec.id} takes durations of {allowed} seconds, got {shown(duration)}")
    # A size still to come from the image (LTX-2.3) is 1080p either way, which has every duration.
    problem = spec.duration_error(width or 1920, height or 1080, duration, fps)
    if problem:
        raise check.invalid("duration", problem)
    return float(duration)


def _audio(check: _Checker, task: dict, spec: ModelSpec) -> bool:
    """Read the audio flag where this model keeps it; refuse anything else in that object."""
    *parents, flag = spec.audio_flag
    container = task
    for depth, name in enumerate(parents):
        path = ".".join(spec.audio_flag[: depth + 1])
        container = check.object(name, path, container)
        check.only_keys(container, {spec.audio_flag[depth + 1]}, path)
    return check.boolean(container, flag, ".".join(spec.audio_flag), spec.audio_default)


def _frame_image(check: _Checker, task: dict) -> str | None:
    inputs = check.object("inputs", "inputs", task)
    check.only_keys(inputs, {"frameImages"}, "inputs")
    if "frameImages" not in inputs:
        return None
    parameter = "inputs.frameImages"
    images = inputs["frameImages"]
    if not isinstance(images, list) or len(images) != 1:
        raise check.invalid(parameter, "inputs.frameImages takes exactly one image (the first frame)")
    item = images[0]
    if isinstance(item, dict):
        check.only_keys(item, {"image", "frame"}, parameter + "[0]")
        if item.get("frame", "first") not in ("first", 0) or isinstance(item.get("frame"), bool):
            raise check.invalid(parameter, 'only the first frame can be given: frame must be "first" or 0')
        item = item.get("image")
    if not isinstance(item, str) or not item.strip():
        raise check.invalid(parameter, "each frame image must be an imageUUID, a URL, a data URI or base64 data")
    return item


def _safety(check: _Checker, task: dict) -> SafetyRequest:
    """checkContent turns the output check on, in `fast` mode unless `mode` says `full`; a `mode` of fast or full
    turns it on by itself. checkContent with mode none is checked in fast mode: a task that asks for a check is
    never answered without one. checkInputs checks the first-frame image before generation."""
    safety = check.object("safety", "safety", task)
    check.only_keys(safety, {"checkContent", "mode", "checkInputs"}, "safety")
    check_content = check.boolean(safety, "checkContent", "safety.checkContent", False)
    check_inputs = check.boolean(safety, "checkInputs", "safety.checkInputs", False)
    mode = safety.get("mode", "none")
    if mode not in ("none", "fast", "full"):
        raise check.invalid("safety.mode", "safety.mode must be none, fast or full")
    if check_content and mode == "none":
        mode = "fast"
    return SafetyRequest(SafetyMode(mode), check_inputs)
