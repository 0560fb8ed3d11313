"""The engine: resident models, one call from a GenerationRequest to a finished video file.

`Engine.generate(request, output_path, progress=...)` plans the shapes, runs the model's recipe, streams the VAE
decode into ffmpeg, decodes the audio and returns a `GenerationResult` with the file's facts and per-stage timings.
Models are loaded on first use and stay resident between calls. CUDA runs in bfloat16, the CPU in float32.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import decode, media, speed
from .audio_input import AudioInputError, decode_audio, fit_to
from .catalog import MODELS, ModelSpec, Recipe, choose_video_decoder, get_model
from .configs import DURATION_SECONDS
from .geometry import GenerationPlan, plan_generation
from .admission import (
    MemoryProfile, check_memory, choose_profile, choose_tiles, default_tiny_folder, frame_image_load,
)  # fmt: skip
from .memory import budget_for, free_cached_memory, gpu_memory_bytes, place  # fmt: skip
from .loras import USER_LORA_FOLDER, LoraEntry, adapter_name
from .progress import StageCallback, denoising_steps
from .preview import PREVIEW_EVERY, LatentPreview, PreviewCallback
from .recipes import ConditioningImage, decode_frame_image, fast, guided
from .request import MAX_SEED, GenerationRequest, RequestError, keyframes_problem, resolve_keyframes, validate_request
from .tiny import ensure_tiny_weights, is_tiny
from .weights import (
    Components,
    TINY,
    LockEntry,
    WeightsError,
    check_components,
    check_folder,
    load_components,
    read_lock,
    resolve_folder,
)

log = logging.getLogger(__name__)

ProgressCallback = StageCallback
"""(stage, fraction of that stage done): the stages of progress.STAGES in order, up to "encoding"."""
FrameObserver = Callable[[np.ndarray, int], None]
"""(a chunk of output frames, uint8 [f, H, W, 3]; the index of its first frame), called before the chunk is encoded;
what it raises ends the clip and leaves no file (the content safety check, ltx_runtime/safety.py)."""

RECIPES = {Recipe.FAST: fast, Recipe.PRO: guided, Recipe.LTX23: guided, Recipe.LTX25_PRO: guided}
"""The module whose `run` denoises each catalog recipe; every `run` takes the same arguments."""


class OutOfMemory(RuntimeError):
    """The GPU ran out of memory twice: once as planned, once more frugally. The engine stays usable."""


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
    vae_tiles: str = str(decode.OFFICIAL_TILES)
    """The VAE tiles the video was decoded with (the `vae_tiles` lever, or the frugal mode's smaller ones)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: loading (first call only), text_encoding, stage_1, upsample, stage_2, audio_decode (audio
    VAE and vocoder; vocoder: its share), decode_and_encode (the VAE decode streamed into the encoder; vae_decode: the
    VAE's share, to_uint8: the frames' conversion to uint8 RGB or yuv420p, encode_tail: what the encoder takes after
    the last frame, the only part of encoding that does not overlap the decode), total; retried_frugally (1.0) after
    an out-of-memory."""


def pick_device() -> tuple[torch.device, torch.dtype]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


class Engine:
    """Loads models on demand from `weights` (a folder, a root of per-model folders, or "tiny") and keeps them.

    `memory_profile` places the weights (default: chosen per model against the GPU's memory, `profile_for`;
    `resident` on the CPU);
    `memory_budget_gib` caps what a request may plan to use (default: most of the GPU's memory; none on the CPU);
    `speed_options` picks the optimization levers (default: all that work on this device; speed.py);
    `preview_every`: stage-1 steps between two live previews;
    `lock`: weights.lock's entries (default: read from `default_lock_path()`); `tiny_folder`: where "tiny" builds and
    finds the tiny weights (default: `default_tiny_folder()`);
    `video_decoder`: LTX-2.5's video decoder, "diffusion" (the official default), "conv", or "auto": diffusion on a
    GPU, conv on the CPU (catalog.VIDEO_DECODER_SETTINGS; the other models always decode with the conv VAE)."""

    def __init__(
        self,
        weights: Path | str,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        lock: dict[str, LockEntry] | None = None,
        tiny_folder: Path | None = None,
        x264_preset: str = media.X264_PRESET_DEFAULT,
        memory_profile: MemoryProfile | None = None,
        memory_budget_gib: float | None = None,
        speed_options: speed.SpeedOptions | None = None,
        loras: dict[str, LoraEntry] | None = None,
        preview_every: int = PREVIEW_EVERY,
        video_decoder: str = "auto",
    ):
        default_device, default_dtype = pick_device()
        self.device = device or default_device
        self.dtype = dtype or default_dtype
        self.weights = weights
        self.lock = read_lock() if lock is None else lock
        self.tiny_folder = Path(tiny_folder) if tiny_folder is not None else default_tiny_folder()
        self.x264_preset = x264_preset
        total = gpu_memory_bytes(self.device)
        self.memory_profile = memory_profile
        """The profile set for every model; None: chosen per model (`profile_for`)."""
        self.memory_budget = budget_for(total, memory_budget_gib)
        self.speed_options = speed_options or speed.SpeedOptions()
        self.preview_every = preview_every
        self.video_decoder = choose_video_decoder(video_decoder, self.device.type == "cuda")  # an unknown one: now
        if self.video_decoder != video_decoder:
            log.info("LTX-2.5 video decoder: %s (%s on %s)", self.video_decoder, video_decoder, self.device.type)
        self.levers: dict[Path, dict[str, str]] = {}
        """What the speed levers did, per loaded weights folder."""
        self._loaded: dict[Path, Components] = {}
        self._adopted: dict[str, Path] = {}
        self.loras = loras or {}
        """The LoRAs requests may name (ltx_runtime.loras), their files in the weights root's loras/ folder."""

    def profile_for(self, model_id: str) -> MemoryProfile:
        """The memory profile `model_id` runs under: the one set, else the one its default clip fits in within the
        memory budget (admission.choose_profile; the API node picks the same for admission); `resident` without a
        budget (the CPU's default)."""
        return self.memory_profile or choose_profile(get_model(model_id), self.memory_budget, self.video_decoder)

    @property
    def uses_tiny_weights(self) -> bool:
        return str(self.weights) == TINY

    def folder_for(self, spec: ModelSpec) -> Path:
        if self.uses_tiny_weights:
            return ensure_tiny_weights(self.tiny_folder, spec.architecture)
        folder = resolve_folder(Path(self.weights), spec)
        if is_tiny(folder) and not spec.demo_only:
            demo_ids = ", ".join(model.id for model in MODELS.values() if model.demo_only)
            raise WeightsError(
                f"{folder} holds tiny random demo weights (written by `ltx-runtime weights build-tiny`), not the "
                f"weights of {spec.id} ({spec.name}). To run {spec.id} on tiny weights, pass --weights tiny; to use "
                f"this folder, pass a demo model id ({demo_ids}) with --weights {folder}"
            )
        return folder

    @property
    def lora_folder(self) -> Path:
        return (self.tiny_folder if self.uses_tiny_weights else Path(self.weights).expanduser()) / USER_LORA_FOLDER

    def _load_loras(self, components: Components, spec: ModelSpec, request: GenerationRequest) -> None:
        """Load the request's LoRAs that this model's transformer does not hold yet (each loaded once, then kept,
        switched off outside the requests that name it); refuse an unknown one or one for another architecture."""
        transformer = components.pipeline.transformer
        for lora_id, _ in request.loras:
            entry = self.loras.get(lora_id)
            if entry is None:
                offered = ", ".join(self.loras) or "none"
                raise RequestError("lora", f"unknown LoRA {lora_id!r}; this server offers: {offered}")
            if entry.architecture != spec.architecture:
                raise RequestError(
                    "lora", f"LoRA {lora_id!r} is for {entry.architecture} models; {spec.id} is {spec.architecture}"
                )
            name = adapter_name(lora_id)
            if name in getattr(transformer, "peft_config", {}):
                continue
            path = self.lora_folder / entry.file
            if not path.is_file():
                raise WeightsError(f"LoRA {lora_id!r}: no file {path} (the operator lists it, but it is not there)")
            try:
                components.pipeline.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            except (ValueError, RuntimeError, KeyError, OSError) as error:
                if name in getattr(transformer, "peft_config", {}):
                    transformer.delete_adapters(name)
                raise RequestError("lora", f"LoRA {lora_id!r} cannot be loaded into {spec.id}'s transformer: {error}") from None
            components.pipeline.disable_lora()

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
            components = load_components(folder, spec, self.dtype, lock, self.video_decoder)
            profile = self.profile_for(spec.id)
            place(components, profile, self.device, self.dtype)
            self._install(components, profile)
            log.info("loaded %s from %s on %s (%s, %s profile)", spec.id, folder, self.device, self.dtype, profile.value)
        else:
            check_folder(folder, spec, lock, self.video_decoder)
            check_components(components, spec)
        return components

    def adopt(self, model_id: str, components: Components) -> None:
        """Serve `model_id` with components built elsewhere (the benchmark's random full-size models), placed by
        this engine's memory profile and sped up by its levers like loaded ones."""
        check_components(components, get_model(model_id))
        profile = self.profile_for(model_id)
        place(components, profile, self.device, self.dtype)
        self._install(components, profile)
        self._adopted[model_id] = components.folder

    def _install(self, components: Components, profile: MemoryProfile) -> None:
        fp8_storage = profile is not MemoryProfile.RESIDENT
        self.levers[components.folder] = speed.apply(components, self.speed_options, self.device, fp8_storage)
        self._loaded[components.folder] = components

    def generate(
        self,
        request: GenerationRequest,
        output_path: Path,
        progress: ProgressCallback | None = None,
        frame_observer: FrameObserver | None = None,
        preview: PreviewCallback | None = None,
    ) -> GenerationResult:
        """Generate one clip. On CUDA out-of-memory the caches are freed and the clip is tried once more frugally
        (text encoder off the GPU after encoding, transformer off it during the decode, smaller VAE tiles); a second
        out-of-memory raises OutOfMemory and leaves the engine ready for the next request."""
        spec = validate_request(request)
        # Without a duration, what cannot fit even at the head's shortest is refused now; the head's pick once known.
        asked = request.duration if request.duration is not None else DURATION_SECONDS[0]
        image_load = frame_image_load(keyframe.frame for keyframe in request.keyframes)
        plan = plan_generation(request.width, request.height, asked, request.fps, spec.audio_sample_rate)
        profile = self.profile_for(spec.id)
        needed = check_memory(spec, plan, profile, self.memory_budget, video_decoder=self.video_decoder, **image_load)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        loaded_before = len(self._loaded)
        components = self.load(spec.id)
        if len(self._loaded) > loaded_before:
            timings["loading"] = time.perf_counter() - started
        self._load_loras(components, spec, request)
        if request.duration is None:
            clock = time.perf_counter()
            duration = self.choose_duration(spec.id, request.prompt, request.fps)
            timings["duration_head"] = time.perf_counter() - clock  # the prompt's encoding included
            plan = plan_generation(request.width, request.height, duration, request.fps, spec.audio_sample_rate)
            needed = check_memory(spec, plan, profile, self.memory_budget, video_decoder=self.video_decoder,
                                  **image_load)  # fmt: skip
            problem = keyframes_problem([keyframe.frame for keyframe in request.keyframes], plan.frames)
            if problem:  # an index past the frames the head picked
                raise RequestError("keyframes", problem)
        if speed.applied(self.levers[components.folder]["vae_tiles"]):
            needed, why = choose_tiles(spec, plan, profile, self.memory_budget, video_decoder=self.video_decoder,
                                       **image_load)  # fmt: skip
            log.info("VAE tiles for %s %dx%d: %s", spec.id, plan.width, plan.height, why)
        seed = random.randint(0, MAX_SEED) if request.seed is None else request.seed
        images = tuple(ConditioningImage(decode_frame_image(keyframe.image, image_crf(components)), keyframe.frame)
                       for keyframe in resolve_keyframes(request.keyframes, plan.frames))  # fmt: skip
        soundtrack = None if request.audio_input is None else prepare_soundtrack(request.audio_input, components, plan)
        attempt = dict(request=request, spec=spec, plan=plan, seed=seed, images=images, soundtrack=soundtrack,
                       output_path=Path(output_path), components=components,
                       report=progress or (lambda stage, fraction: None), frame_observer=frame_observer,
                       preview=preview, tiles=needed.tiles)  # fmt: skip
        attempts = (needed.frugal, True)
        try:
            for number, frugal in enumerate(attempts, 1):
                self._restore_placement(components)  # an earlier frugal attempt may have left modules in host memory
                try:
                    timings.update(self._attempt_eager_if_compile_fails(attempt, frugal))
                    break
                except torch.OutOfMemoryError:
                    pass  # handled below, outside the except block, where the failed attempt's tensors are unreachable
                free_cached_memory()
                if number == len(attempts):
                    raise OutOfMemory(
                        f"out of GPU memory for {plan.width}x{plan.height}, {plan.duration:g} s at {plan.fps} fps, even "
                        "with the text encoder and transformer moved off the GPU; ask for a smaller size or a shorter clip"
                    )
                log.warning("out of GPU memory for %s %dx%d; retrying once more frugally", spec.id, plan.width, plan.height)
                timings["retried_frugally"] = 1.0
        except BaseException:
            # An interrupted clip (out of memory, an error, a progress callback that raises to cancel) leaves no file
            # behind and the modules where they belong. Its tensors are freed once the caller drops the exception
            # (free_cached_memory() then returns their GPU memory).
            Path(output_path).unlink(missing_ok=True)
            self._restore_placement(components)
            raise
        timings["total"] = time.perf_counter() - started
        tiles = _decode_tiles(plan, needed.tiles, frugal)
        return self._result(request, spec, plan, seed, Path(output_path), components, timings, tiles)

    def choose_duration(self, model_id: str, prompt: str, fps: int) -> float:
        """The seconds the model's duration head gives `prompt` at `fps`, as Lightricks' pipelines resolve an
        unset duration (ltx-pipelines `resolve_num_frames`; diffusers `predict_num_frames`): predicted from the
        prompt's connector outputs, clamped to 1-20 s and snapped to an 8k+1 frame count, which the clip then has."""
        spec = get_model(model_id)
        if not spec.picks_duration:
            raise RequestError("duration", f"{spec.id} has no duration head: the duration must be given")
        components = self.load(model_id)
        pipeline = components.pipeline
        with torch.inference_mode():
            embeds, mask, _, _ = components.prompt_cache.encode(pipeline, prompt)
            video, audio, _ = pipeline.connectors(embeds, mask, padding_side=pipeline.tokenizer.padding_side)
            frames = pipeline.duration_head.predict_num_frames(
                video[:1], audio[:1], frame_rate=float(fps),
                temporal_compression_ratio=pipeline.vae_temporal_compression_ratio,
                min_seconds=DURATION_SECONDS[0], max_seconds=DURATION_SECONDS[1],
            )  # fmt: skip
        return frames / fps

    def _attempt(
        self, *, request, spec, plan, seed, images, soundtrack, output_path, components, report, frame_observer,
        preview, tiles, frugal,
    ) -> dict[str, float]:  # fmt: skip
        """One try at the whole clip with `tiles` for the VAE decode; `frugal` trades speed for GPU memory (and
        decodes in smaller tiles). Returns the per-stage timings."""
        report("text_encoding", 0.0)
        stage_1_steps = RECIPES[spec.recipe].stage_1_steps(spec, request)
        on_step = denoising_steps(report, stage_1_steps)
        generator = torch.Generator(self.device).manual_seed(seed)
        after_encoding = (lambda: self._offload(components.pipeline.text_encoder)) if frugal else None
        on_latents = None if preview is None else LatentPreview(components.pipeline.vae, plan, stage_1_steps, preview,
                                                                self.preview_every)  # fmt: skip
        # Only the guided recipes take a soundtrack (validate_request refuses one for the others).
        given_audio = {} if soundtrack is None else {"soundtrack": soundtrack.encoder_input}
        recipe_output = RECIPES[spec.recipe].run(
            components, spec, plan, request, generator, on_step, images=images, after_encoding=after_encoding,
            on_latents=on_latents, **given_audio,
        )  # fmt: skip
        timings = dict(recipe_output.timings)

        pipeline = components.pipeline
        audio = None if soundtrack is None else soundtrack.track  # A2V: the input audio itself, as officially
        report("decoding", 0.0)
        if request.audio and soundtrack is None:
            clock = time.perf_counter()
            audio = decode.audio_waveform(pipeline.audio_vae, pipeline.vocoder, recipe_output.audio_latents, plan, timings)
            timings["audio_decode"] = time.perf_counter() - clock

        clock = time.perf_counter()
        if frugal:
            self._offload(pipeline.transformer)
        # Where the colour conversion runs: on the GPU (the `gpu_colour` lever), ffmpeg gets yuv420p and RGB is made
        # only for an observer; otherwise ffmpeg converts the RGB it gets.
        yuv = speed.applied(self.levers[components.folder]["gpu_colour"])
        with decode.tiling(pipeline.vae, plan.gen_height, plan.gen_width, _decode_tiles(plan, tiles, frugal)):
            chunks = decode.video_frames(pipeline.vae, recipe_output.video_latents, plan, timings,
                                         rgb=frame_observer is not None or not yuv, yuv420p=yuv,
                                         diffusion_decoder=components.diffusion_decoder, generator=generator)  # fmt: skip
            chunks = _reporting_frames(chunks, plan, report, timings)
            if frame_observer is not None:
                chunks = _observed(chunks, frame_observer)
            media.encode_clip(
                (chunk.yuv420p if yuv else chunk.rgb for chunk in chunks),
                audio,
                width=plan.width,
                height=plan.height,
                fps=plan.fps,
                sample_rate=plan.sample_rate,
                output_path=output_path,
                output_format=request.output_format,
                quality=request.quality,
                x264_preset=self.x264_preset,
                pixel_format="yuv420p" if yuv else "rgb24",
            )
        report("encoding", 1.0)
        timings["encode_tail"] = time.perf_counter() - timings.pop("last_frame_at")
        timings["decode_and_encode"] = time.perf_counter() - clock
        return timings

    def _attempt_eager_if_compile_fails(self, attempt: dict, frugal: bool) -> dict[str, float]:
        """One attempt; if torch.compile fails on it (no C compiler for Triton, an unsupported op), the compiled
        blocks go back to eager for good on this engine, with one log line, and the attempt runs again eagerly."""
        components = attempt["components"]
        try:
            return self._attempt(**attempt, frugal=frugal)
        except torch._dynamo.exc.TorchDynamoException as error:
            uncompiled = [speed.uncompile(module) for module in (components.pipeline.transformer, components.pipeline.vae)]
            if not any(uncompiled):
                raise  # nothing of ours was compiled
            reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            log.warning("torch.compile failed for %s (%s); running eager from now on", components.folder, reason)
            levers = self.levers[components.folder]
            for lever in ("compile", "vae_compile", "cuda_graphs"):
                if lever == "compile" or not levers.get(lever, "off").startswith("off"):
                    levers[lever] = f"off (compilation failed, eager instead: {reason})"
            self._restore_placement(components)
            return self._attempt(**attempt, frugal=frugal)

    def _offload(self, module) -> None:
        """Move a resident module to host memory (streamed modules already live there) and free its GPU memory."""
        if self.device.type == "cuda" and module.device.type == "cuda" and not _is_streamed(module):
            module.to("cpu")
            free_cached_memory()

    def _restore_placement(self, components: Components) -> None:
        for module in (components.pipeline.text_encoder, components.pipeline.transformer):
            if not _is_streamed(module):
                module.to(self.device)

    @staticmethod
    def _result(request, spec, plan, seed, path, components, timings, tiles) -> GenerationResult:
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
            vae_tiles=str(tiles),
        )


@dataclass(frozen=True)
class Soundtrack:
    """An audio-to-video request's input audio, decoded twice by ffmpeg."""

    track: np.ndarray
    """The output file's audio: float32 stereo [samples, 2] at the model's output rate, trimmed or padded with
    silence to the clip's duration (ltx-pipelines `A2VidPipelineTwoStage` returns the input audio, not a decode)."""
    encoder_input: np.ndarray
    """What the audio VAE encodes: at its own rate (16 kHz), trimmed or padded to the generated frames' duration."""


def prepare_soundtrack(data: bytes, components: Components, plan: GenerationPlan) -> Soundtrack:
    rate = components.pipeline.audio_vae.config.sample_rate
    try:
        return Soundtrack(
            track=fit_to(decode_audio(data, plan.sample_rate), plan.audio_samples),
            encoder_input=fit_to(decode_audio(data, rate), round(plan.gen_frames / plan.fps * rate)),
        )
    except AudioInputError as error:
        raise RequestError("audio_input", str(error)) from None


def image_crf(components: Components) -> int:
    """The H.264 CRF first-frame images are re-compressed at: the one the model generation was trained with."""
    from diffusers.pipelines.ltx2.utils import resolve_default_image_crf

    return resolve_default_image_crf(components.pipeline.text_encoder)


def _decode_tiles(plan: GenerationPlan, tiles: decode.DecodeTiles, frugal: bool) -> decode.DecodeTiles:
    """The planned tiles, or in the frugal mode the official ones at a quarter of their area where they can decode."""
    if not frugal:
        return tiles
    return decode.DecodeTiles(decode.decode_long_side(plan.gen_height, plan.gen_width, frugal))


def _observed(chunks: Iterator[decode.FrameChunk], observer: FrameObserver) -> Iterator[decode.FrameChunk]:
    first = 0
    for chunk in chunks:
        observer(chunk.rgb, first)
        first += len(chunk)
        yield chunk


def _reporting_frames(chunks, plan: GenerationPlan, report: ProgressCallback, timings: dict[str, float]):
    """The decoded chunks, reporting the decoding per chunk, then the start of the encoder's last part (the frames
    it still holds, the audio and the container), which runs once the last chunk is taken: its start is
    `timings["last_frame_at"]`."""
    done = 0
    for chunk in chunks:
        done += len(chunk)
        report("decoding", done / plan.frames)
        yield chunk
    timings["last_frame_at"] = time.perf_counter()
    report("encoding", 0.0)


def _is_streamed(module) -> bool:
    """Whether diffusers group offloading streams `module` (its weights then live in host memory by design)."""
    from diffusers.hooks.group_offloading import _get_group_onload_device

    try:
        _get_group_onload_device(module)
        return True
    except ValueError:
        return False
