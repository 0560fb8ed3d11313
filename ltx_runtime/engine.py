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

import torch
from PIL import Image, UnidentifiedImageError

from . import decode, media, speed
from .catalog import ModelSpec, Recipe, get_model
from .geometry import GenerationPlan, plan_generation
from .memory import (
    GIB,
    MemoryEstimate,
    MemoryProfile,
    budget_for,
    choose_profile,
    estimate,
    free_cached_memory,
    gpu_memory_bytes,
    place,
)  # fmt: skip
from .progress import StageCallback, denoising_steps
from .recipes import fast, guided
from .tiny import ensure_tiny_weights, is_tiny
from .weights import Components, LockEntry, check_components, check_folder, load_components, read_lock, resolve_folder

log = logging.getLogger(__name__)

TINY = "tiny"
DEFAULT_TINY_FOLDER = Path(os.environ.get("LTX_TINY_DIR", Path.home() / ".cache" / "ltx-runtime" / "tiny"))
"""Root of the tiny weights: one folder per architecture (ltx-2/, ltx-2.3/), built on first use."""
MAX_SEED = 2**63 - 1
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")

ProgressCallback = StageCallback
"""(stage, fraction of that stage done): the stages of progress.STAGES in order, up to "encoding"."""


class RequestError(ValueError):
    """A request that the model catalog does not allow; `parameter` names the offending field."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


class MemoryLimitError(RequestError):
    """A request whose estimated GPU memory exceeds the budget: refused before anything runs."""

    def __init__(self, message: str):
        super().__init__("width", message)


class OutOfMemory(RuntimeError):
    """The GPU ran out of memory twice: once as planned, once more frugally. The engine stays usable."""


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
    """Seconds per stage: loading (first call only), text_encoding, stage_1, upsample, stage_2, audio_decode (audio
    VAE and vocoder; vocoder: its share), decode_and_encode (the VAE decode streamed into the encoder; vae_decode: the
    VAE's share), total; retried_frugally (1.0) after an out-of-memory."""


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
        raise RequestError("fps", f"{spec.id} takes {spec.describe_fps()} fps, not {request.fps}")
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


def check_memory(
    spec: ModelSpec, plan: GenerationPlan, profile: MemoryProfile, budget: int | None
) -> MemoryEstimate:
    """Admission control: the estimate for `plan`, or MemoryLimitError naming the limit when it does not fit."""
    needed = estimate(spec, plan, profile, budget)
    if budget is not None and needed.peak > budget:
        advice = "a smaller size, a shorter clip or a lower frame rate"
        if profile is not MemoryProfile.LOW:
            advice += ", or a more frugal memory profile (LTX_MEMORY_PROFILE=low)"
        raise MemoryLimitError(
            f"{plan.width}x{plan.height} for {plan.duration:g} s at {plan.fps} fps needs about "
            f"{needed.peak / GIB:.0f} GiB of GPU memory ({needed.tokens:,} video tokens) with the '{profile.value}' "
            f"memory profile, over this server's limit of {budget / GIB:.0f} GiB; ask for {advice}"
        )
    return needed


def pick_device() -> tuple[torch.device, torch.dtype]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


class Engine:
    """Loads models on demand from `weights` (a folder, a root of per-model folders, or "tiny") and keeps them.

    `memory_profile` places the weights (default: chosen from the GPU's memory; `resident` on the CPU);
    `memory_budget_gib` caps what a request may plan to use (default: most of the GPU's memory; none on the CPU);
    `speed_options` picks the optimization levers (default: all that work on this device; speed.py)."""

    def __init__(
        self,
        weights: Path | str,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        lock: dict[str, LockEntry] | None = None,
        tiny_folder: Path = DEFAULT_TINY_FOLDER,
        x264_preset: str = "medium",
        memory_profile: MemoryProfile | None = None,
        memory_budget_gib: float | None = None,
        speed_options: speed.SpeedOptions | None = None,
    ):
        default_device, default_dtype = pick_device()
        self.device = device or default_device
        self.dtype = dtype or default_dtype
        self.weights = weights
        self.lock = read_lock() if lock is None else lock
        self.tiny_folder = Path(tiny_folder)
        self.x264_preset = x264_preset
        total = gpu_memory_bytes(self.device)
        self.memory_profile = memory_profile or (choose_profile(total) if total else MemoryProfile.RESIDENT)
        self.memory_budget = budget_for(total, memory_budget_gib)
        self.speed_options = speed_options or speed.SpeedOptions()
        self.levers: dict[Path, dict[str, str]] = {}
        """What the speed levers did, per loaded weights folder."""
        self._loaded: dict[Path, Components] = {}
        self._adopted: dict[str, Path] = {}

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
        if model_id in self._adopted:
            return self._loaded[self._adopted[model_id]]
        folder = self.folder_for(spec)
        # Tiny weights stand in for every model; the lock describes real weights only.
        lock = None if self.uses_tiny_weights else self.lock
        components = self._loaded.get(folder)
        if components is None:
            components = load_components(folder, spec, self.device, self.dtype, lock, self.memory_profile)
            self._install(components)
            log.info("loaded %s from %s on %s (%s, %s profile)", spec.id, folder, self.device, self.dtype, self.memory_profile.value)
        else:
            check_folder(folder, spec, lock)
            check_components(components, spec)
        return components

    def adopt(self, model_id: str, components: Components) -> None:
        """Serve `model_id` with components built elsewhere (the benchmark's random full-size models), placed by
        this engine's memory profile and sped up by its levers like loaded ones."""
        check_components(components, get_model(model_id))
        place(components, self.memory_profile, self.device, self.dtype)
        self._install(components)
        self._adopted[model_id] = components.folder

    def _install(self, components: Components) -> None:
        fp8_storage = self.memory_profile is not MemoryProfile.RESIDENT
        self.levers[components.folder] = speed.apply(components, self.speed_options, self.device, fp8_storage)
        self._loaded[components.folder] = components

    def generate(
        self, request: GenerationRequest, output_path: Path, progress: ProgressCallback | None = None
    ) -> GenerationResult:
        """Generate one clip. On CUDA out-of-memory the caches are freed and the clip is tried once more frugally
        (text encoder off the GPU after encoding, transformer off it during the decode, smaller VAE tiles); a second
        out-of-memory raises OutOfMemory and leaves the engine ready for the next request."""
        spec = validate_request(request)
        plan = plan_generation(request.width, request.height, request.duration, request.fps, spec.audio_sample_rate)
        needed = check_memory(spec, plan, self.memory_profile, self.memory_budget)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        loaded_before = len(self._loaded)
        components = self.load(spec.id)
        if len(self._loaded) > loaded_before:
            timings["loading"] = time.perf_counter() - started
        seed = random.randint(0, MAX_SEED) if request.seed is None else request.seed
        image = None if request.image is None else open_image(request.image)
        attempt = dict(request=request, spec=spec, plan=plan, seed=seed, image=image, output_path=Path(output_path),
                       components=components, report=progress or (lambda stage, fraction: None))  # fmt: skip
        attempts = (needed.frugal, True)
        for number, frugal in enumerate(attempts, 1):
            self._restore_placement(components)  # an earlier frugal attempt may have left modules in host memory
            try:
                timings.update(self._attempt(**attempt, frugal=frugal))
                break
            except torch.OutOfMemoryError:
                pass  # handled below, outside the except block, where the failed attempt's tensors are unreachable
            free_cached_memory()
            if number == len(attempts):
                self._restore_placement(components)
                raise OutOfMemory(
                    f"out of GPU memory for {plan.width}x{plan.height}, {plan.duration:g} s at {plan.fps} fps, even "
                    "with the text encoder and transformer moved off the GPU; ask for a smaller size or a shorter clip"
                )
            log.warning("out of GPU memory for %s %dx%d; retrying once more frugally", spec.id, plan.width, plan.height)
            timings["retried_frugally"] = 1.0
        timings["total"] = time.perf_counter() - started
        return self._result(request, spec, plan, seed, Path(output_path), components, timings)

    def _attempt(self, *, request, spec, plan, seed, image, output_path, components, report, frugal) -> dict[str, float]:
        """One try at the whole clip; `frugal` trades speed for GPU memory. Returns the per-stage timings."""
        report("text_encoding", 0.0)
        stage_1_steps = fast.STAGE_1_STEPS if spec.recipe is Recipe.FAST else guided.PARAMS[spec.recipe].steps
        on_step = denoising_steps(report, stage_1_steps)
        generator = torch.Generator(self.device).manual_seed(seed)
        after_encoding = (lambda: self._offload(components.pipeline.text_encoder)) if frugal else None
        if spec.recipe is Recipe.FAST:
            recipe_output = fast.run(components, plan, request.prompt, generator, on_step, image=image, after_encoding=after_encoding)
        else:
            recipe_output = guided.run(
                components, plan, request.prompt, generator, on_step, image=image, recipe=spec.recipe, after_encoding=after_encoding
            )  # fmt: skip
        timings = dict(recipe_output.timings)

        pipeline = components.pipeline
        audio = None
        report("decoding", 0.0)
        if request.audio:
            clock = time.perf_counter()
            audio = decode.audio_waveform(pipeline.audio_vae, pipeline.vocoder, recipe_output.audio_latents, plan, timings)
            timings["audio_decode"] = time.perf_counter() - clock

        clock = time.perf_counter()
        if frugal:
            self._offload(pipeline.transformer)
        self._prepare_vae(pipeline.vae, frugal)
        media.encode_clip(
            _reporting_frames(decode.video_frames(pipeline.vae, recipe_output.video_latents, plan, timings), plan, report),
            audio,
            width=plan.width,
            height=plan.height,
            fps=plan.fps,
            sample_rate=plan.sample_rate,
            output_path=output_path,
            output_format=request.output_format,
            quality=request.quality,
            x264_preset=self.x264_preset,
        )
        report("encoding", 1.0)
        timings["decode_and_encode"] = time.perf_counter() - clock
        return timings

    def _offload(self, module) -> None:
        """Move a resident module to host memory (streamed modules already live there) and free its GPU memory."""
        if self.device.type == "cuda" and module.device.type == "cuda" and not _is_streamed(module):
            module.to("cpu")
            free_cached_memory()

    def _restore_placement(self, components: Components) -> None:
        for module in (components.pipeline.text_encoder, components.pipeline.transformer):
            if not _is_streamed(module):
                module.to(self.device)

    def _prepare_vae(self, vae, frugal: bool) -> None:
        # Spatial tiles pay off with the real 128-1024-channel decoder on a GPU; with tiny widths on a CPU the
        # output, not the activations, dominates and tiling only adds work. Frugal decodes use quarter-area tiles.
        if self.device.type == "cuda":
            tile = 256 if frugal else 512  # diffusers' default tiles are 512 px with a 64 px overlap
            vae.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                              tile_sample_stride_height=tile - 64, tile_sample_stride_width=tile - 64)  # fmt: skip
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


def _reporting_frames(chunks, plan: GenerationPlan, report: ProgressCallback):
    """The decoded chunks, reporting the decoding per chunk, then the start of the encoder's last part (the frames
    it still holds, the audio and the container), which runs once the last chunk is taken."""
    done = 0
    for chunk in chunks:
        done += len(chunk)
        report("decoding", done / plan.frames)
        yield chunk
    report("encoding", 0.0)


def _is_streamed(module) -> bool:
    """Whether diffusers group offloading streams `module` (its weights then live in host memory by design)."""
    from diffusers.hooks.group_offloading import _get_group_onload_device

    try:
        _get_group_onload_device(module)
        return True
    except ValueError:
        return False
