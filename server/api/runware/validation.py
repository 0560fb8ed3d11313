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

from ltx_runtime.catalog import MODELS, ModelSpec
from ltx_runtime.loras import MAX_LORAS, MAX_WEIGHT, MIN_WEIGHT, LoraEntry
from ltx_runtime.media import QUALITY_DEFAULT, QUALITY_MAX, QUALITY_MIN, OutputFormat
from ltx_runtime.configs import DURATION_SECONDS
from ltx_runtime.request import (
    LAST, MAX_PROMPT, MAX_SEED, SafetyMode, SafetyRequest, audio_to_video_problem, keyframes_problem,
)

from ...media.netguard import BlockedURLError, parse_url
from ...tasks.jobs import Job, job_seeds
from ...tasks.service import UUID_PATTERN
from ..bodies import parameter_name, shown
from .protocol import ContractError

TASK_TYPE = "videoInference"
TOP_LEVEL = {
    "taskType", "taskUUID", "model", "positivePrompt", "width", "height", "duration", "fps", "seed",
    "numberResults", "outputType", "outputFormat", "outputQuality", "ttl", "deliveryMethod", "webhookURL",
    "uploadEndpoint", "includeCost", "safety", "inputs", "routing",
}  # fmt: skip
GUIDANCE_FIELDS = {"steps", "CFGScale", "negativePrompt"}
"""Taken by the guided models only (catalog `guidance`; runware-sdk 1.8.0: lightricks:ltx@2 and ltx@2.3)."""
# Sent by the official SDKs on their own; accepted and ignored (runware-contract.md sections 3a and 5).
SDK_EXTRAS = {"customTaskUUID", "skipResponse", "retry"}
MAX_RESULTS = 4
MIN_TTL = 60


@dataclass
class VideoJob(Job):
    """A validated videoInference task: the runtime's job, plus how Runware presents its results."""

    include_cost: bool = False
    """includeCost: each result item carries its cost (`RunwareService.result_item`)."""


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
        if not isinstance(value, str):
            raise self.invalid(name, f"{name} must be an http(s) URL")
        try:
            parse_url(value)
        except BlockedURLError as error:
            raise self.invalid(name, f"{name} must be an http(s) URL ({error})") from None
        return value


def validate_video_inference(task: dict[str, Any], *, demo: bool, loras: dict[str, LoraEntry] | None = None) -> VideoJob:
    """`loras`: the LoRAs the operator offers (ltx_runtime.loras); none by default."""
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
    model_fields = (GUIDANCE_FIELDS if spec.guidance else set()) | ({"lora"} if spec.takes_loras else set())
    check.only_keys(task, TOP_LEVEL | SDK_EXTRAS | {audio_root} | model_fields, "")

    prompt = task.get("positivePrompt")
    if prompt is None:
        raise check.missing("positivePrompt", "positivePrompt is required")
    if not isinstance(prompt, str) or not 2 <= len(prompt) <= 10000:
        raise check.invalid("positivePrompt", "positivePrompt must be a string of 2 to 10000 characters")

    frame_images = _frame_images(check, task)
    audio_input = _audio_input(check, task, spec)
    width, height = _size(check, task, spec, bool(frame_images))
    fps = task.get("fps", spec.default_fps)
    if isinstance(fps, bool) or not isinstance(fps, int) or fps not in spec.fps_values:
        raise check.invalid("fps", f"{spec.id} takes fps {spec.describe_fps()}, got {shown(fps)}")
    duration = _duration(check, task, spec, width, height, fps)
    # Without a duration the head picks one on the worker: what even its longest pick cannot hold is refused now
    # (the engine checks the rest against the pick).
    frames = round((duration if duration is not None else DURATION_SECONDS[1]) * fps)
    problem = keyframes_problem([item["frame"] for item in frame_images], frames)
    if problem:
        raise check.invalid("inputs.frameImages", f"inputs.frameImages: {problem}")

    number_results = check.integer("numberResults", 1, 1, MAX_RESULTS)
    seed = check.integer("seed", None, 0, MAX_SEED)
    if task.get("outputType", "URL") != "URL":
        raise check.invalid("outputType", "outputType must be URL for video models")
    output_format = task.get("outputFormat", "MP4")
    if not isinstance(output_format, str) or output_format.upper() not in {"MP4", "WEBM", "MOV"}:
        raise check.invalid("outputFormat", f"outputFormat must be MP4, WEBM or MOV, got {shown(output_format)}")
    quality = check.integer("outputQuality", QUALITY_DEFAULT, QUALITY_MIN, QUALITY_MAX)
    ttl = check.integer("ttl", None, MIN_TTL, 2**31 - 1)
    if task.get("deliveryMethod", "async") not in ("async", "sync"):
        raise check.invalid("deliveryMethod", "deliveryMethod must be async or sync")
    include_cost = check.boolean(task, "includeCost", "includeCost", False)
    safety = _safety(check, task)
    check.object("routing", "routing", task)  # accepted and ignored: one server has no providers to route between
    steps, cfg_scale, negative_prompt = _guidance(check, task, spec)
    chosen_loras = _loras(check, task, spec, loras or {})

    return VideoJob(
        model=spec.id,
        prompt=prompt,
        width=width,
        height=height,
        duration=duration,
        fps=fps,
        audio=_audio(check, task, spec, audio_input),
        seeds=job_seeds(seed, number_results),
        output_format=OutputFormat(output_format.lower()).value,
        quality=quality,
        ttl=ttl,
        include_cost=include_cost,
        webhook_url=check.url("webhookURL"),
        upload_endpoint=check.url("uploadEndpoint"),
        frame_images=frame_images or None,
        audio_input=audio_input,
        safety=safety,
        steps=steps,
        cfg_scale=cfg_scale,
        negative_prompt=negative_prompt,
        loras=chosen_loras,
    )


def _loras(check: _Checker, task: dict, spec: ModelSpec, offered: dict[str, LoraEntry]) -> list[tuple[str, float]] | None:
    """`lora: [{model, weight}]`: ids the operator lists, for this model's architecture, weights in range (default
    1.0), at most MAX_LORAS, each once."""
    items = task.get("lora")
    if items is None:
        return None
    if not isinstance(items, list) or len(items) > MAX_LORAS:
        raise check.invalid("lora", f"lora must be a list of at most {MAX_LORAS} objects {{model, weight}}")
    chosen: list[tuple[str, float]] = []
    for index, item in enumerate(items):
        where = f"lora[{index}]"
        if not isinstance(item, dict):
            raise check.invalid("lora", f"{where} must be an object {{model, weight}}")
        check.only_keys(item, {"model", "weight"}, where)
        lora_id, weight = item.get("model"), item.get("weight", 1.0)
        entry = offered.get(lora_id) if isinstance(lora_id, str) else None
        if entry is None:
            names = ", ".join(offered) or "none"
            raise check.invalid("lora", f"{where}.model: unknown LoRA {shown(lora_id)}; this server offers: {names}")
        if entry.architecture != spec.architecture:
            raise check.invalid(
                "lora", f"{where}.model: {lora_id} is a LoRA for {entry.architecture} models, {spec.id} is {spec.architecture}"
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise check.invalid("lora", f"{where}.weight must be a number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}, got {shown(weight)}")
        if any(lora_id == earlier for earlier, _ in chosen):
            raise check.invalid("lora", f"{where}.model: {lora_id} is listed twice")
        chosen.append((lora_id, float(weight)))
    return chosen or None


def _guidance(check: _Checker, task: dict, spec: ModelSpec) -> tuple[int | None, float | None, str | None]:
    """steps, CFGScale and negativePrompt of a guided model, in its ranges (absent: None, the official defaults)."""
    limits = spec.guidance
    if limits is None:
        return None, None, None
    steps = check.integer("steps", None, limits.min_steps, limits.max_steps)
    cfg_scale = task.get("CFGScale")
    if cfg_scale is not None:
        if isinstance(cfg_scale, bool) or not isinstance(cfg_scale, (int, float)) or not limits.min_cfg <= cfg_scale <= limits.max_cfg:
            raise check.invalid(
                "CFGScale", f"CFGScale must be a number from {limits.min_cfg:g} to {limits.max_cfg:g}, got {shown(cfg_scale)}"
            )
        cfg_scale = float(cfg_scale)
    negative_prompt = task.get("negativePrompt")
    if negative_prompt is not None and (not isinstance(negative_prompt, str) or not 1 <= len(negative_prompt) <= MAX_PROMPT):
        raise check.invalid("negativePrompt", f"negativePrompt must be a string of 1 to {MAX_PROMPT} characters")
    return steps, cfg_scale, negative_prompt


def _size(check: _Checker, task: dict, spec: ModelSpec, has_image: bool) -> tuple[int | None, int | None]:
    width, height = task.get("width"), task.get("height")
    if width is None and height is None:
        if has_image and spec.size_from_image:
            return None, None  # taken from the image's orientation once it is loaded
        if spec.size_from_image:
            raise check.missing("width", f"{spec.name} needs width and height, or inputs.frameImages")
        return spec.default_size
    for name, value in (("width", width), ("height", height)):
        if value is None:
            other = "height" if name == "width" else "width"
            raise check.missing(name, f"{name} must be given together with {other}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise check.invalid(name, f"{name} must be an integer, got {shown(value)}")
    size_problem = spec.size_problem(width, height)
    if size_problem:
        raise check.fail("unsupportedDimensions", "width", size_problem)
    return width, height


def _duration(
    check: _Checker, task: dict, spec: ModelSpec, width: int | None, height: int | None, fps: int
) -> float | None:
    duration = task.get("duration", spec.default_duration)
    if duration is None and spec.picks_duration:
        return None  # LTX-2.5: the duration head picks it from the prompt
    if spec.picks_duration and isinstance(duration, str) and duration.isdigit():
        duration = int(duration)  # runware-sdk 1.8.0 types the 2.5 tiers' duration as int | str
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        head = " (or none: its duration head picks one)" if spec.picks_duration else ""
        allowed = spec.describe_durations()
        raise check.invalid("duration", f"{spec.id} takes durations of {allowed} seconds{head}, got {shown(duration)}")
    # A size still to come from the image (LTX-2.3) is 1080p either way, which has every duration.
    problem = spec.duration_error(width or 1920, height or 1080, duration, fps)
    if problem:
        raise check.invalid("duration", problem)
    return float(duration)


def _audio(check: _Checker, task: dict, spec: ModelSpec, audio_input: str | None) -> bool:
    """Read the audio flag where this model keeps it; refuse anything else in that object. With `inputs.audio` the
    clip's audio is on unless the flag says otherwise, and a flag set to false is refused: the input audio is the
    clip's soundtrack, which false would drop."""
    *parents, flag = spec.audio_flag
    container = task
    for depth, name in enumerate(parents):
        path = ".".join(spec.audio_flag[: depth + 1])
        container = check.object(name, path, container)
        check.only_keys(container, {spec.audio_flag[depth + 1]}, path)
    where = ".".join(spec.audio_flag)
    audio = check.boolean(container, flag, where, spec.audio_default or audio_input is not None)
    if audio_input is not None and not audio:
        raise check.invalid("inputs.audio", f"inputs.audio is the clip's soundtrack: it cannot go with {where} false")
    return audio


def _audio_input(check: _Checker, task: dict, spec: ModelSpec) -> str | None:
    """`inputs.audio` (audio-to-video): a URL, a data URI or base64 data, on a model that takes it. The exact field
    of the hosted API is not published for LTX (runware-sdk 1.8.0 types `inputs` as an opaque object; ltx25.md
    section 2, [U]); issue 21 names it `inputs.audio`."""
    inputs = check.object("inputs", "inputs", task)
    if "audio" not in inputs:
        return None
    parameter = "inputs.audio"
    if problem := audio_to_video_problem(spec):
        raise check.unsupported(parameter, problem)
    value = inputs["audio"]
    if not isinstance(value, str) or not value.strip():
        raise check.invalid(parameter, "inputs.audio must be an audio file's URL, a data URI or base64 data")
    if UUID_PATTERN.match(value):
        raise check.unsupported(parameter, "inputs.audio: this server has no media upload (mediaStorage) to name audio "
                                "by an id; send the audio's URL, a data URI or base64 data")  # fmt: skip
    if value.startswith(("http://", "https://")):
        try:
            parse_url(value)
        except BlockedURLError as error:
            raise check.invalid(parameter, f"the audio URL cannot be fetched ({error})") from None
    return value


def _frame_images(check: _Checker, task: dict) -> list[dict]:
    """`inputs.frameImages`: items that are an image reference (an imageUUID, a URL, a data URI or base64), the first
    frame, or `{image, frame}` with `frame` "first", "last" or a 0-based frame index (default "first"). Returned as
    job items {"image", "frame"} with "first" as 0; where the frames must lie is checked once the duration is known."""
    inputs = check.object("inputs", "inputs", task)
    check.only_keys(inputs, {"frameImages", "audio"}, "inputs")
    if "frameImages" not in inputs:
        return []
    parameter = "inputs.frameImages"
    items = inputs["frameImages"]
    if not isinstance(items, list) or not items:
        raise check.invalid(parameter, "inputs.frameImages must be a list of images (or {image, frame} objects)")
    chosen = []
    for index, item in enumerate(items):
        where = f"{parameter}[{index}]"
        frame = "first"
        if isinstance(item, dict):
            check.only_keys(item, {"image", "frame"}, where)
            frame = item.get("frame", "first")
            if frame not in ("first", LAST) and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
                raise check.invalid(
                    parameter, f'{where}.frame must be "first", "last" or a frame index from 0, got {shown(frame)}'
                )
            item = item.get("image")
        if not isinstance(item, str) or not item.strip():
            raise check.invalid(
                parameter, f"{where}: each frame image must be an imageUUID, a URL, a data URI or base64 data"
            )
        if item.startswith(("http://", "https://")):
            try:
                parse_url(item)
            except BlockedURLError as error:
                raise check.invalid(parameter, f"{where}: the frame image URL cannot be fetched ({error})") from None
        chosen.append({"image": item, "frame": 0 if frame == "first" else frame})
    return chosen


def _safety(check: _Checker, task: dict) -> SafetyRequest:
    """checkContent turns the output check on, in `fast` mode unless `mode` says `full`; a `mode` of fast or full
    turns it on by itself. checkContent with mode none is checked in fast mode: a task that asks for a check is
    never answered without one. checkInputs checks the frame images before generation."""
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
