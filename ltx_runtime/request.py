"""What a caller asks the engine for, and its validation against the model catalog.

Kept free of torch (and of anything that imports it), so that the API server can validate requests without loading
the inference stack."""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import Enum

from PIL import Image, UnidentifiedImageError

from . import media
from .audio_input import AudioInputError, decode_audio
from .catalog import MODELS, ModelSpec, get_model
from .geometry import VAE_TEMPORAL, frames_for_vae
from .loras import MAX_LORAS, MAX_WEIGHT, MIN_WEIGHT

MAX_SEED = 2**63 - 1
MAX_PROMPT = 10000
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


class RequestError(ValueError):
    """A request that the model catalog does not allow; `parameter` names the offending field."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


LAST = "last"
"""A keyframe's `frame` for the clip's last frame, resolved once the frame count is known (`resolve_keyframes`)."""


@dataclass(frozen=True)
class Keyframe:
    image: bytes
    """A PNG, JPEG or WEBP file."""
    frame: int | str = 0
    """0-based index into the output frames, or LAST."""


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    prompt: str
    width: int
    height: int
    duration: float | None
    """Seconds; None lets the model's duration head pick them from the prompt (models that have one: LTX-2.5)."""
    fps: int
    audio: bool
    seed: int | None = None
    output_format: media.OutputFormat = media.OutputFormat.MP4
    quality: int = media.QUALITY_DEFAULT
    keyframes: tuple["Keyframe", ...] = ()
    """Images the clip shows at given frames (image-to-video with a first frame, keyframe interpolation with more);
    each image file is fitted to the frame by resizing and centre-cropping."""
    steps: int | None = None
    """Stage-1 denoising steps of a guided model (None: the official count)."""
    guidance_scale: float | None = None
    """The video CFG scale of a guided model (None: the official 3.0)."""
    negative_prompt: str | None = None
    """What a guided model steers away from (None: the official negative prompt)."""
    loras: tuple[tuple[str, float], ...] = ()
    """(LoRA id, weight) pairs, applied for this request only (ltx_runtime.loras)."""
    audio_input: bytes | None = None
    """Audio-to-video: an audio file (audio_input.DEMUXERS' formats) the clip is generated to; the clip's audio track is
    this audio, trimmed or padded with silence to the clip's duration. Models with `audio_to_video` only."""


def validate_request(request: GenerationRequest) -> ModelSpec:
    """Check a request against the catalog; raise RequestError naming the first wrong parameter."""
    try:
        spec = get_model(request.model)
    except KeyError as error:
        raise RequestError("model", str(error)) from None
    if not 2 <= len(request.prompt) <= MAX_PROMPT:
        raise RequestError("prompt", f"the prompt must be 2 to {MAX_PROMPT} characters long")
    size_problem = spec.size_problem(request.width, request.height)
    if size_problem:
        raise RequestError("width", size_problem)
    if request.fps not in spec.fps_values:
        raise RequestError("fps", f"{spec.id} takes {spec.describe_fps()} fps, not {request.fps}")
    if request.duration is None:
        if not spec.picks_duration:
            raise RequestError("duration", f"{spec.id} has no duration head: the duration must be given")
    else:
        duration_error = spec.duration_error(request.width, request.height, request.duration, request.fps)
        if duration_error:
            raise RequestError("duration", duration_error)
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise RequestError("seed", f"the seed must be between 0 and {MAX_SEED}")
    if not media.QUALITY_MIN <= request.quality <= media.QUALITY_MAX:
        raise RequestError("quality", f"quality must be {media.QUALITY_MIN} to {media.QUALITY_MAX}")
    for keyframe in request.keyframes:
        check_image(keyframe.image)
    frames = [keyframe.frame for keyframe in request.keyframes]
    problem = keyframes_problem(frames, None if request.duration is None else round(request.duration * request.fps))
    if problem:
        raise RequestError("keyframes", problem)
    if request.audio_input is not None:
        check_audio_input(spec, request.audio, request.audio_input)
    check_guidance(spec, request.steps, request.guidance_scale, request.negative_prompt)
    check_lora_weights(spec, request.loras)
    return spec


def check_lora_weights(spec: ModelSpec, loras) -> None:
    """The number of LoRAs and their weights (which ids exist is the operator's list: the engine checks it)."""
    if not loras:
        return
    if not spec.takes_loras:
        raise RequestError("lora", f"{spec.id} takes no LoRAs")
    if len(loras) > MAX_LORAS:
        raise RequestError("lora", f"at most {MAX_LORAS} LoRAs per request, not {len(loras)}")
    for lora_id, weight in loras:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise RequestError("lora", f"LoRA {lora_id!r}: the weight must be from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}, not {weight!r}")


def check_guidance(spec: ModelSpec, steps: int | None, guidance_scale: float | None, negative_prompt: str | None) -> None:
    """Refuse guidance settings on a model without guidance, or outside the model's ranges (catalog.GuidanceLimits)."""
    given = [name for name, value in (("steps", steps), ("guidance_scale", guidance_scale),
                                      ("negative_prompt", negative_prompt)) if value is not None]  # fmt: skip
    limits = spec.guidance
    if limits is None:
        if given:
            raise RequestError(given[0], f"{spec.id} runs without guidance: it takes no steps, CFG scale or negative prompt")
        return
    if steps is not None and (isinstance(steps, bool) or not limits.min_steps <= steps <= limits.max_steps):
        raise RequestError("steps", f"{spec.id} takes {limits.min_steps} to {limits.max_steps} steps, not {steps!r}")
    if guidance_scale is not None and not limits.min_cfg <= guidance_scale <= limits.max_cfg:
        raise RequestError(
            "guidance_scale", f"{spec.id} takes a CFG scale from {limits.min_cfg:g} to {limits.max_cfg:g}, not {guidance_scale!r}"
        )
    if negative_prompt is not None and not 1 <= len(negative_prompt) <= MAX_PROMPT:
        raise RequestError("negative_prompt", f"the negative prompt must be 1 to {MAX_PROMPT} characters long")


AUDIO_CHECK_RATE = 8000
"""The rate an input audio file is decoded at to check it (the engine decodes it again at the model's rates)."""


def audio_to_video_problem(spec: ModelSpec) -> str | None:
    """Why `spec` takes no input audio (None when it does), naming the models that do."""
    if spec.audio_to_video:
        return None
    offered = ", ".join(model.id for model in MODELS.values() if model.audio_to_video and not model.demo_only)
    return f"{spec.id} does not generate to a given audio; models that do: {offered}"


def check_audio_input(spec: ModelSpec, audio: bool, data: bytes) -> None:
    """Refuse input audio for a model without audio-to-video, with the audio switched off (the clip's soundtrack is
    the input: off would drop it), or that is not a readable audio file within the limits (audio_input.py)."""
    if problem := audio_to_video_problem(spec):
        raise RequestError("audio_input", problem)
    if not audio:
        raise RequestError(
            "audio_input", "the input audio is the clip's soundtrack: it cannot go with the audio switched off"
        )
    try:
        decode_audio(data, AUDIO_CHECK_RATE)
    except AudioInputError as error:
        raise RequestError("audio_input", str(error)) from None


def check_image(data: bytes) -> None:
    """Refuse a conditioning image that is not a readable PNG, JPEG or WEBP file."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise RequestError("image", f"a frame image is not a readable PNG, JPEG or WEBP file ({error})") from None


def max_keyframes(frames: int) -> int:
    """At most one image per latent frame of the clip (one per 8 frames, and the first): each image past the
    first frame appends a latent frame's worth of tokens to every denoising pass, so this bounds the sequence at
    twice the clip's, which the memory estimate counts (memory.estimate `keyframes`). The official pipelines set no
    limit; more images than latent frames crowd several into the span one latent frame encodes."""
    return (frames_for_vae(frames) - 1) // VAE_TEMPORAL + 1


def keyframes_problem(positions: list, frames: int | None) -> str | None:
    """What is wrong with keyframe positions (0-based frame indexes or LAST) for a clip of `frames` output frames
    (None: not known yet, the duration head picks it; only what holds at any length is checked)."""
    for position in positions:
        if position != LAST and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
            return f"a keyframe's frame must be first, last or a frame index from 0, not {position!r}"
    resolved = [frames - 1 if position == LAST and frames is not None else position for position in positions]
    duplicate = next((position for i, position in enumerate(resolved) if position in resolved[:i]), None)
    if duplicate is not None:
        return f"two images are given for frame {duplicate}"
    if frames is None:
        return None
    if len(positions) > max_keyframes(frames):
        return f"at most {max_keyframes(frames)} frame images for a clip of {frames} frames, not {len(positions)}"
    beyond = next((position for position in resolved if position >= frames), None)
    if beyond is not None:
        return f"frame {beyond} is past the clip's last frame ({frames - 1}: {frames} frames)"
    return None


def resolve_keyframes(keyframes: tuple[Keyframe, ...], frames: int) -> tuple[Keyframe, ...]:
    """The keyframes with LAST as the index of the last of `frames` output frames."""
    return tuple(Keyframe(k.image, frames - 1) if k.frame == LAST else k for k in keyframes)


class SafetyMode(str, Enum):
    NONE = "none"
    FAST = "fast"
    FULL = "full"

    @property
    def rank(self) -> int:
        return list(SafetyMode).index(self)


@dataclass(frozen=True)
class SafetyRequest:
    """What a task asks to be checked: its output frames (`mode`) and its frame images (`check_inputs`)."""

    mode: SafetyMode = SafetyMode.NONE
    check_inputs: bool = False

    @property
    def active(self) -> bool:
        return self.mode is not SafetyMode.NONE or self.check_inputs

    def at_least(self, required: SafetyMode) -> "SafetyRequest":
        """This request made at least as strict as an operator's `required` mode (which checks inputs too)."""
        if required is SafetyMode.NONE:
            return self
        return SafetyRequest(max(self.mode, required, key=lambda mode: mode.rank), True)

    def to_dict(self) -> dict:
        return {"mode": self.mode.value, "check_inputs": self.check_inputs}

    @classmethod
    def from_dict(cls, data: dict | None) -> "SafetyRequest":
        data = data or {}
        return cls(SafetyMode(data.get("mode", "none")), bool(data.get("check_inputs", False)))
