"""The engine: resident models, one call from a GenerationRequest to a finished video file.

`Engine.generate(request, output_path, progress=...)` plans the shapes, runs the model's recipe, streams the VAE
decode into ffmpeg, decodes the audio and returns a `GenerationResult` with the file's facts and per-stage timings.
Models are loaded on first use and stay resident between calls. CUDA runs in bfloat16, the CPU in float32.
"""

from __future__ import annotations

import io
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, UnidentifiedImageError

from . import decode, media
from .catalog import ModelSpec, Recipe, get_model
from .geometry import GenerationPlan, plan_generation
from .recipes import fast, guided
from .tiny import ensure_tiny_weights, is_tiny
from .weights import Components, LockEntry, check_components, check_folder, load_components, read_lock, resolve_folder

log = logging.getLogger(__name__)

TINY = "tiny"
DEFAULT_TINY_FOLDER = Path(os.environ.get("LTX_TINY_DIR", Path.home() / ".cache" / "ltx-runtime" / "tiny"))
"""Root of the tiny weights: one folder per architecture (ltx-2/, ltx-2.3/), built on first use."""
MAX_SEED = 2**63 - 1
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")

ProgressCallback = Callable[[int, int], None]
"""(denoising steps done, total denoising steps)"""


class RequestError(ValueError):
    """A request that the model catalog does not allow; `parameter` names the offending field."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    prompt: str
    width: int
    height: int
    duration: float
    fps: int
    audio: bool
    seed: int | None = None
    output_format: media.OutputFormat = media.OutputFormat.MP4
    quality: int = media.QUALITY_DEFAULT
    image: bytes | None = None
    """A first-frame image file (PNG, JPEG or WEBP), fitted to the frame by resizing and centre-cropping."""


@dataclass(frozen=True)
class GenerationResult:
    path: Path
    model: str
    seed: int
    width: int
    height: int
    frames: int
    fps: int
    duration: float
    has_audio: bool
    sample_rate: int | None
    output_format: media.OutputFormat
    tiny_weights: bool
    """True when the clip came from random demo weights (it is noise)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: loading (first call only), text_encoding, stage_1, upsample, stage_2, decode_and_encode
    (VAE decode streamed into the encoder), audio_decode, total."""


def validate_request(request: GenerationRequest) -> ModelSpec:
    """Check a request against the catalog; raise RequestError naming the first wrong parameter."""
    try:
        spec = get_model(request.model)
    except KeyError as error:
        raise RequestError("model", str(error)) from None
    if not 2 <= len(request.prompt) <= 10000:
        raise RequestError("prompt", "the prompt must be 2 to 10000 characters long")
    if not spec.allows_size(request.width, request.height):
        raise RequestError(
            "width", f"{request.width}x{request.height} is not a size of {spec.id}; allowed: {spec.describe_sizes()}"
        )
    if request.duration not in spec.durations:
        allowed = ", ".join(str(d) for d in spec.durations)
        raise RequestError("duration", f"{spec.id} takes durations of {allowed} s, not {request.duration}")
    if request.fps not in spec.fps_values:
        allowed = ", ".join(str(f) for f in spec.fps_values)
        raise RequestError("fps", f"{spec.id} takes {allowed} fps, not {request.fps}")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise RequestError("seed", f"the seed must be between 0 and {MAX_SEED}")
    if not media.QUALITY_MIN <= request.quality <= media.QUALITY_MAX:
        raise RequestError("quality", f"quality must be {media.QUALITY_MIN} to {media.QUALITY_MAX}")
    if request.image is not None:
        open_image(request.image)
    return spec


def open_image(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise RequestError("image", f"the first-frame image is not a readable PNG, JPEG or WEBP file ({error})") from None


def pick_device() -> tuple[torch.device, torch.dtype]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


class Engine:
    """Loads models on demand from `weights` (a folder, a root of per-model folders, or "tiny") and keeps them."""

    def __init__(
        self,
        weights: Path | str,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        lock: dict[str, LockEntry] | None = None,
        tiny_folder: Path = DEFAULT_TINY_FOLDER,
        x264_preset: str = "medium",
    ):
        default_device, default_dtype = pick_device()
        self.device = device or default_device
        self.dtype = dtype or default_dtype
        self.weights = weights
        self.lock = read_lock() if lock is None else lock
        self.tiny_folder = Path(tiny_folder)
        self.x264_preset = x264_preset
        self._loaded: dict[Path, Components] = {}

    @property
    def uses_tiny_weights(self) -> bool:
        return str(self.weights) == TINY

    def folder_for(self, spec: ModelSpec) -> Path:
        if self.uses_tiny_weights:
            return ensure_tiny_weights(self.tiny_folder, spec.architecture)
        return resolve_folder(Path(self.weights), spec)

    def load(self, model_id: str) -> Components:
        """A model's components: loaded on first use and resident after, one copy per weights folder however many
        model ids share it (in demo mode every LTX-2 id runs on the same tiny folder)."""
        spec = get_model(model_id)
        folder = self.folder_for(spec)
        # Tiny weights stand in for every model; the lock describes real weights only.
        lock = None if self.uses_tiny_weights else self.lock
        components = self._loaded.get(folder)
        if components is None:
            components = self._loaded[folder] = load_components(folder, spec, self.device, self.dtype, lock)
            log.info("loaded %s from %s on %s (%s)", spec.id, folder, self.device, self.dtype)
        else:
            check_folder(folder, spec, lock)
            check_components(components, spec)
        return components

    def generate(
        self, request: GenerationRequest, output_path: Path, progress: ProgressCallback | None = None
    ) -> GenerationResult:
        spec = validate_request(request)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        resident = self.folder_for(spec) in self._loaded
        components = self.load(spec.id)
        if not resident:
            timings["loading"] = time.perf_counter() - started
        plan = plan_generation(request.width, request.height, request.duration, request.fps, spec.audio_sample_rate)
        seed = random.randint(0, MAX_SEED) if request.seed is None else request.seed
        generator = torch.Generator(self.device).manual_seed(seed)

        image = None if request.image is None else open_image(request.image)
        on_step = progress or (lambda done, total: None)
        if spec.recipe is Recipe.FAST:
            recipe_output = fast.run(components, plan, request.prompt, generator, on_step, image=image)
        else:
            recipe_output = guided.run(components, plan, request.prompt, generator, on_step, image=image, recipe=spec.recipe)
        timings.update(recipe_output.timings)

        pipeline = components.pipeline
        audio = None
        if request.audio:
            clock = time.perf_counter()
            audio = decode.audio_waveform(pipeline.audio_vae, pipeline.vocoder, recipe_output.audio_latents, plan)
            timings["audio_decode"] = time.perf_counter() - clock

        clock = time.perf_counter()
        self._prepare_vae(pipeline.vae, plan)
        media.encode_clip(
            decode.video_frames(pipeline.vae, recipe_output.video_latents, plan),
            audio,
            width=plan.width,
            height=plan.height,
            fps=plan.fps,
            sample_rate=plan.sample_rate,
            output_path=Path(output_path),
            output_format=request.output_format,
            quality=request.quality,
            x264_preset=self.x264_preset,
        )
        timings["decode_and_encode"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - started
        return self._result(request, spec, plan, seed, Path(output_path), components, timings)

    def _prepare_vae(self, vae, plan: GenerationPlan) -> None:
        # Spatial tiles pay off with the real 128-1024-channel decoder on a GPU; with tiny widths on a CPU the
        # output, not the activations, dominates and tiling only adds work.
        if self.device.type == "cuda":
            vae.enable_tiling()
        # Temporal tiling is always streamed by decode.py, never done inside the VAE.
        vae.use_framewise_decoding = False

    @staticmethod
    def _result(request, spec, plan, seed, path, components, timings) -> GenerationResult:
        return GenerationResult(
            path=path,
            model=spec.id,
            seed=seed,
            width=plan.width,
            height=plan.height,
            frames=plan.frames,
            fps=plan.fps,
            duration=plan.duration,
            has_audio=request.audio,
            sample_rate=plan.sample_rate if request.audio else None,
            output_format=request.output_format,
            tiny_weights=is_tiny(components.folder),
            timings=timings,
        )
