"""Recipes: the denoising part of each model, from prompt to final latents. One recipe per file, read top to bottom."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..request import IMAGE_FORMATS

StepCallback = Callable[[int, int], None]
"""Called after every denoising step with (steps done, total steps) over all stages of a recipe."""


@dataclass
class RecipeOutput:
    video_latents: torch.Tensor
    """Denormalized video latents [1, C, F, H, W] at the generation size, ready for the VAE."""
    audio_latents: torch.Tensor
    """Denormalized audio latents [1, C, L, mel bins], ready for the audio VAE."""
    timings: dict[str, float]
    """Seconds per stage."""


class StageClock:
    """Wall time per named stage; waits for the GPU so that asynchronous kernels are charged to the right stage."""

    def __init__(self, device: torch.device):
        self.device = device
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[stage] = now - self._start
        self._start = now


LatentsCallback = Callable[[torch.Tensor, int, int], None]
"""Called after a denoising step with (the packed latents [1, tokens, C], steps done, total steps)."""


def step_reporter(
    on_step: StepCallback, steps_before: int, total_steps: int, on_latents: LatentsCallback | None = None
):
    """A diffusers `callback_on_step_end` that reports progress over the whole recipe (and the latents to
    `on_latents`, which the live preview reads). On a keyframe pipeline it also sets the conditioned tokens back
    to their clean values (`restore_conditioned`)."""

    def report(pipe, step: int, timestep, callback_kwargs):
        on_step(steps_before + step + 1, total_steps)
        restore = getattr(pipe, "restore_conditioned", None)  # keyframes (KeyframePipeline)
        latents = callback_kwargs["latents"] if restore is None else restore(callback_kwargs["latents"])
        if on_latents is not None:
            on_latents(latents, steps_before + step + 1, total_steps)
        return {} if restore is None else {"latents": latents}

    return report


class PromptCache:
    """Embeddings of the `size` most recently encoded prompts (with their negative prompt), on the GPU."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict = OrderedDict()

    def encode(self, denoise, prompt: str, negative_prompt: str | None = None) -> tuple:
        """`denoise.encode_prompt`'s (embeds, mask, negative embeds, negative mask), from the cache when possible."""
        key = (prompt, negative_prompt)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        embeddings = denoise.encode_prompt(
            prompt, negative_prompt=negative_prompt, do_classifier_free_guidance=negative_prompt is not None,
            device=denoise.device,
        )  # fmt: skip
        if self.size > 0:
            self._entries[key] = embeddings
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return embeddings


CROSS_TIMESTEP = False
"""diffusers' `use_cross_timestep` for every recipe: the audio-video cross-attention's scale and shift come from each
modality's own (per-token) timesteps; `cross_attention_gates` then gives the gates the other modality's sigma. That
pair is ltx-core v1.2.0's rule for every architecture (Lightricks/LTX-2 400fd31, transformer_args.py
`_prepare_cross_attention_timestep`); diffusers' switch takes both from one source (False: own timesteps, LTX-2.0's legacy; True: the other
modality's sigma, which is what ltx-core 1.0.0 does). The three agree in text-to-video, where every token's timestep is
the sigma; in image-to-video the clean first frame's tokens (timestep 0) tell them apart (docs/fidelity.md)."""


@contextmanager
def cross_attention_gates(transformer):
    """For the duration, the transformer's audio-to-video and video-to-audio cross-attention gates are computed from
    the other modality's sigma (the `audio_sigma` / `sigma` the pipelines pass), as ltx-core v1.2.0 does, whatever
    timesteps diffusers hands them. With `use_cross_timestep=False` (CROSS_TIMESTEP) that is v1.2.0's rule."""
    config = transformer.config
    gate_factor = config.cross_attn_timestep_scale_multiplier / config.timestep_scale_multiplier
    sigmas = {}

    def remember_sigmas(module, args, kwargs):
        sigmas["video"] = kwargs.get("sigma")
        sigmas["audio"] = kwargs.get("audio_sigma") if kwargs.get("audio_sigma") is not None else sigmas["video"]

    def gate_from(modality):
        def replace_input(module, args, kwargs):
            if sigmas.get(modality) is None:
                return None  # called without sigmas: diffusers' own input stands
            return (sigmas[modality].flatten() * gate_factor, *args[1:]), kwargs

        return replace_input

    handles = [
        transformer.register_forward_pre_hook(remember_sigmas, with_kwargs=True),
        transformer.av_cross_attn_video_a2v_gate.register_forward_pre_hook(gate_from("audio"), with_kwargs=True),
        transformer.av_cross_attn_audio_v2a_gate.register_forward_pre_hook(gate_from("video"), with_kwargs=True),
    ]
    try:
        yield transformer
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def clean_tokens_kept(transformer):
    """For the duration, the transformer's video velocity is zero on the tokens it is given at timestep 0 (the clean
    tokens of a conditioning image), so that the pipelines' x0 = latents - sigma * velocity is the clean latent
    there, as in ltx-core (`X0Model`: x0 from each token's own timestep, sigma x denoise mask). diffusers' LTX-2
    pipelines convert every token with the step's sigma; the guidance deltas of those tokens are discarded, but the
    guidance rescale takes the std over all tokens, so with a conditioning image every guided step differed
    (docs/fidelity.md, 2.5 Pro with a first frame). Nothing changes without per-token timesteps (text to video)."""

    def zero_clean_velocity(module, args, kwargs, output):
        timestep = kwargs.get("timestep")
        if timestep is None or timestep.ndim < 2:
            return None
        video, *rest = output
        return (video.masked_fill((timestep == 0).unsqueeze(-1), 0.0), *rest)

    handle = transformer.register_forward_hook(zero_clean_velocity, with_kwargs=True)
    try:
        yield transformer
    finally:
        handle.remove()


@contextmanager
def first_frame_marked(transformer):
    """For the duration, every transformer pass adds the checkpoint's learned keyframe embedding to the tokens of
    the first latent frame, as ltx-core v1.2.0 does in every generation on a transformer built with
    `use_keyframes_abs_pos_embedding` (LTX-2.5): `VideoLatentTools` marks the first latent frame (the causal VAE's
    one-pixel-frame latent) in `keyframes_mask`, and `apply_keyframes_absolute_embedding` adds the embedding to the
    marked tokens after the input projection; keyframe tokens appended for an image stay unmarked
    (`VideoConditionByKeyframeIndex`). diffusers' LTX-2 pipelines pass no `video_keyframes_mask`, so without this
    the embedding is never added. Nothing changes on a transformer without the embedding (LTX-2, LTX-2.3)."""
    if not getattr(transformer.config, "use_keyframes_abs_pos_embedding", False):
        yield transformer
        return

    def mark_first_frame(module, args, kwargs):
        if kwargs.get("video_keyframes_mask") is not None:
            return None
        tokens = kwargs["hidden_states"]
        mask = tokens.new_zeros((tokens.shape[0], tokens.shape[1], 1))
        mask[:, : kwargs["height"] * kwargs["width"]] = 1.0  # one latent frame of tokens, frame-major order
        return args, {**kwargs, "video_keyframes_mask": mask}

    handle = transformer.register_forward_pre_hook(mark_first_frame, with_kwargs=True)
    try:
        yield transformer
    finally:
        handle.remove()


IMAGE_ROTATION = {3: 180, 6: 270, 8: 90}
"""EXIF orientation -> degrees of counter-clockwise rotation; the only orientations the official decoder applies
(ltx-pipelines media_io/decode.py `decode_image`)."""


def decode_frame_image(data: bytes, crf: int) -> np.ndarray:
    """A frame image file as the official pipelines prepare it before any resizing: turned upright by its EXIF
    orientation, converted to sRGB (an embedded ICC profile is honoured), RGB uint8 [H, W, 3], then re-compressed
    as one H.264 frame at `crf` (the model's training CRF, 33 for LTX-2 and LTX-2.3) at its source size.
    ltx-pipelines media_io/decode.py: `decode_image`, then `preprocess`."""
    import io

    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf
    from PIL import ExifTags, ImageCms

    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as source:
        image = source
        rotation = IMAGE_ROTATION.get(source.getexif().get(ExifTags.Base.Orientation))
        if rotation:
            image = image.rotate(rotation, expand=True)
        icc_profile = source.info.get("icc_profile")
        if image.mode == "RGBA":
            image = image.convert("RGB")
        elif image.mode == "LA":
            image = image.convert("L")
        try:
            if not icc_profile:
                raise ValueError("no ICC profile")
            image = ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(io.BytesIO(icc_profile)), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            image = image.convert("RGB")
        pixels = np.array(image, dtype=np.uint8)
    if min(pixels.shape[:2]) < 2:
        return pixels
    return apply_image_conditioning_crf(pixels, crf)


def fit_frame(pixels: np.ndarray, width: int, height: int) -> torch.Tensor:
    """Bilinear resize that covers width x height (aspect ratio kept, never stretched), then a centre crop; the
    official `resize_and_center_crop` (ltx-pipelines media_io/resize.py). [H, W, 3] uint8 -> [1, 3, 1, height,
    width] float in [-1, 1], as the VAE takes it."""
    frame = torch.from_numpy(pixels).to(torch.float32).permute(2, 0, 1).unsqueeze(0)  # [1, 3, H, W]
    scale = max(height / frame.shape[2], width / frame.shape[3])
    new_height, new_width = math.ceil(frame.shape[2] * scale), math.ceil(frame.shape[3] * scale)
    frame = torch.nn.functional.interpolate(frame, size=(new_height, new_width), mode="bilinear", align_corners=False)
    top, left = (new_height - height) // 2, (new_width - width) // 2
    frame = frame[:, :, top : top + height, left : left + width]
    return (frame / 127.5 - 1.0).unsqueeze(2)


@contextmanager
def untiled(vae):
    """The VAE with spatial and temporal tiling off for the duration (the official pipelines encode conditioning
    images untiled; a tiled decode must not leave its tiles behind for the next request's image)."""
    saved = vae.use_tiling, vae.use_framewise_encoding, vae.use_framewise_decoding
    vae.use_tiling = vae.use_framewise_encoding = vae.use_framewise_decoding = False
    try:
        yield vae
    finally:
        vae.use_tiling, vae.use_framewise_encoding, vae.use_framewise_decoding = saved


def encode_first_frame(pipe, pixels: np.ndarray, width: int, height: int) -> torch.Tensor:
    """A prepared frame image (`decode_frame_image`) fitted to width x height and encoded by the VAE, untiled, to
    its mode: raw (denormalized) latents [1, C, 1, height/32, width/32]."""
    vae = pipe.vae
    frame = fit_frame(pixels, width, height).to(device=vae.device, dtype=vae.dtype)
    with untiled(vae):
        return vae.encode(frame).latent_dist.mode()


@dataclass(frozen=True)
class ConditioningImage:
    pixels: np.ndarray
    """The image as `decode_frame_image` prepares it."""
    frame: int
    """The output frame it is placed at (0-based)."""


def only_first_frame(images: tuple[ConditioningImage, ...]) -> bool:
    return [image.frame for image in images] == [0]


def image_conditioning(pipe, images: tuple[ConditioningImage, ...], plan, width: int, height: int) -> dict:
    """Pipeline arguments that condition a stage at width x height on the frame images, as ltx-pipelines'
    `combined_image_conditionings` does in every pipeline we follow: an image at frame 0 replaces the first latent
    frame (`VideoConditionByLatentIndex`), any other is appended as one more latent frame of tokens placed at its
    frame (`VideoConditionByKeyframeIndex`); all at strength 1 (clean: denoise mask 0, timestep 0).

    A first frame alone: the image-to-video pipeline's arguments (the image encoded as the first latent frame, zeros
    elsewhere, `noise_scale=1.0`: it keeps that frame clean and fills the others with the same noise it draws when
    it encodes an image itself). Keyframes: `KeyframePipeline`'s conditions. No images: none."""
    if not images:
        return {}
    if only_first_frame(images):
        image_latent = encode_first_frame(pipe, images[0].pixels, width, height).to(torch.float32)
        latents = image_latent.new_zeros((*image_latent.shape[:2], plan.latent_frames, *image_latent.shape[3:]))
        latents[:, :, :1] = image_latent
        return {"latents": latents, "noise_scale": 1.0}
    return pipe.conditions(images)


@cache
def _keyframe_pipeline_class():
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    class KeyframePipeline(LTX2ConditionPipeline):
        """diffusers' condition pipeline (first frame by latent replacement, other frames as appended keyframe
        tokens, per-token timesteps from the conditioning mask, the appended tokens dropped at the end) with each
        keyframe placed at its output frame, as ltx-core's `VideoConditionByKeyframeIndex(frame_idx)` places it:
        diffusers takes a latent index and starts the keyframe at that latent frame's first pixel frame
        ((index - 1) * 8 + 1), the official pipelines take the pixel frame itself. The time span of a one-image
        keyframe is [frame, frame + 1) / fps in both diffusers and ltx-core 1.2.0 (400fd31); 1.0.0 gave it 8 frames
        (docs/fidelity.md)."""

        def conditions(self, images: tuple[ConditioningImage, ...]) -> dict:
            """`conditions` for a call; the images are already CRF-compressed (`decode_frame_image`), so diffusers
            must not compress them again (crf 0). Each keyframe names the latent frame that holds its pixel frame;
            `_prepare_keyframe_coords` then places it at the pixel frame, in the same order."""
            self._keyframe_frames = iter([image.frame for image in images if image.frame != 0])
            latent_index = [0 if image.frame == 0 else (image.frame - 1) // self.vae_temporal_compression_ratio + 1
                            for image in images]  # fmt: skip
            return {"conditions": [LTX2VideoCondition(frames=image.pixels, index=index, strength=1.0, crf=0)
                                   for image, index in zip(images, latent_index)]}  # fmt: skip

        def _prepare_keyframe_coords(self, *, pixel_frame_idx: int, **kwargs) -> torch.Tensor:
            return super()._prepare_keyframe_coords(pixel_frame_idx=next(self._keyframe_frames), **kwargs)

        def prepare_latents(self, *args, **kwargs):
            with untiled(self.vae):  # it encodes the images: untiled, as the official pipelines do (`untiled`)
                prepared = super().prepare_latents(*args, **kwargs)
            _, self._conditioning_mask, self._clean_latents, _ = prepared
            return prepared

        def restore_conditioned(self, latents: torch.Tensor) -> torch.Tensor:
            """The latents after a step with the conditioned tokens (the first frame, the keyframes: strength 1)
            set back to their clean values, as ltx-core's samplers do after every step (`post_process_latent`).
            diffusers keeps them by blending the x0 prediction, which a plain Euler step preserves exactly, but
            the Euler-ancestral step (LTX-2.5 Fast) re-noises every token it is given."""
            mask = self._conditioning_mask.to(latents.dtype)
            return latents * (1 - mask) + self._clean_latents.to(latents.dtype) * mask

    return KeyframePipeline


MEL_N_FFT = 1024
"""The audio VAE's STFT size (and window length): ltx-core `AudioEncoder`'s `n_fft`, read from a checkpoint's
`preprocessing.stft.filter_length` with 1024 as the default (ltx-core audio_vae/model_configurator.py); diffusers'
audio VAE config does not carry it."""


def log_mel(waveform: torch.Tensor, audio_vae) -> torch.Tensor:
    """Stereo samples [2, n] at the audio VAE's rate -> log-mel spectrogram [1, 2, frames, mel bins], as ltx-core's
    `AudioProcessor.waveform_to_mel` computes it with torchaudio's `MelSpectrogram`: Hann window of n_fft, centred
    with reflection padding, magnitudes (power 1), Slaney mel scale and norm from 0 Hz to Nyquist, then
    log(max(mel, 1e-5)). torch.stft and transformers' Slaney filter bank stand in for torchaudio (not a dependency)."""
    from transformers.audio_utils import mel_filter_bank

    config = audio_vae.config
    window = torch.hann_window(MEL_N_FFT, dtype=waveform.dtype, device=waveform.device)
    spectrum = torch.stft(waveform, n_fft=MEL_N_FFT, hop_length=config.mel_hop_length, win_length=MEL_N_FFT,
                          window=window, center=True, pad_mode="reflect", return_complex=True).abs()  # fmt: skip
    filters = mel_filter_bank(num_frequency_bins=MEL_N_FFT // 2 + 1, num_mel_filters=config.mel_bins, min_frequency=0.0,
                              max_frequency=config.sample_rate / 2, sampling_rate=config.sample_rate, norm="slaney",
                              mel_scale="slaney")  # fmt: skip
    mel = torch.einsum("cft,fm->ctm", spectrum, torch.from_numpy(filters).to(spectrum))
    return torch.log(mel.clamp(min=1e-5)).unsqueeze(0)


def encode_soundtrack(pipe, waveform: np.ndarray, latent_frames: int) -> torch.Tensor:
    """A clip's given soundtrack (float32 stereo [samples, 2] at the audio VAE's rate, at least the clip long) encoded
    by the audio VAE to its mode, cut to the clip's `latent_frames`: raw (denormalized) latents [1, C, frames, mel
    bins]. ltx-pipelines a2vid_two_stage.py: `vae_encode_audio`, then `[:, :, :audio_shape.frames]`."""
    vae = pipe.audio_vae
    samples = torch.from_numpy(np.ascontiguousarray(waveform.T)).to(device=vae.device, dtype=torch.float32)
    latents = vae.encode(log_mel(samples, vae).to(vae.dtype)).latent_dist.mode()
    return latents[:, :, :latent_frames].to(torch.float32)


def soundtrack_latent_frames(pipe, plan) -> int:
    """Audio latent frames of a clip: its generated frames' duration at the audio VAE's latent rate, rounded (the
    pipelines' count: diffusers `LTX2Pipeline`, ltx-core `AudioLatentShape.from_duration`)."""
    per_second = pipe.audio_sampling_rate / pipe.audio_hop_length / pipe.audio_vae_temporal_compression_ratio
    return round(plan.gen_frames / plan.fps * per_second)


HELD_AUDIO_SIGMA_ZERO = True
"""Audio-to-video: the held audio's sigma (its prompt AdaLN, the video's audio-to-video cross-attention gate) is 0,
ltx-pipelines v1.2.0's rule for a frozen modality (400fd31 utils/helpers.py `modality_from_latent_state`, since LTX-2
commit 2362161); 1.0.0 gives it the step's sigma (False). The hold runs before `cross_attention_gates` reads it."""


@contextmanager
def audio_held(pipe, audio_latents: torch.Tensor | None):
    """Audio-to-video: for the duration, every transformer pass sees `audio_latents` (raw, [1, C, frames, mel bins])
    clean at timestep 0, whatever audio the pipeline steps, as the official A2V pipeline holds the audio (ltx-pipelines
    1.0.0 a2vid_two_stage.py, `denoise_video_only`: the audio state is not noised and its denoise mask is 0, so its
    tokens' timesteps are 0 and the sampler leaves it as it is); its sigma is 0 (`HELD_AUDIO_SIGMA_ZERO`).
    Its stage-1 audio guider has the default parameters (no CFG, no STG), which changes what the audio stream of the
    guidance passes sees, and through the audio-to-video attention the video: the unconditional pass keeps the
    positive prompt's audio context, and the STG pass perturbs the video's self-attention only. The audio the pipeline
    itself returns is meaningless and not used. Nothing is held without latents."""
    if audio_latents is None:
        yield
        return
    transformer = pipe.transformer
    packed = pipe._pack_audio_latents(audio_latents)
    clean = pipe._normalize_audio_latents(packed, pipe.audio_vae.latents_mean, pipe.audio_vae.latents_std)

    def hold(module, args, kwargs):
        batch, stepped = kwargs["hidden_states"].shape[0], kwargs["audio_hidden_states"]
        kwargs["audio_hidden_states"] = clean.expand(batch, -1, -1).to(device=stepped.device, dtype=stepped.dtype)
        kwargs["audio_timestep"] = torch.zeros(batch, device=stepped.device, dtype=torch.float32)
        if HELD_AUDIO_SIGMA_ZERO:
            kwargs["audio_sigma"] = torch.zeros(batch, device=stepped.device, dtype=torch.float32)
        if batch == 2:  # the CFG pass, [unconditional, conditional]: the audio keeps the positive context
            for name in ("audio_encoder_hidden_states", "audio_encoder_attention_mask"):
                if kwargs.get(name) is not None:
                    kwargs[name] = kwargs[name][1:].expand_as(kwargs[name])
        return args, kwargs

    def unperturbed(module, args, kwargs):
        if kwargs.get("perturbation_mask") is None:
            return None
        return args, {**kwargs, "perturbation_mask": None, "all_perturbed": False}

    handles = [transformer.register_forward_pre_hook(hold, with_kwargs=True, prepend=True)]
    handles += [block.audio_attn1.register_forward_pre_hook(unperturbed, with_kwargs=True)
                for block in transformer.transformer_blocks]  # fmt: skip
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def loras_on(pipe, adapters: list[tuple[str, float]]):
    """Exactly these LoRA adapters (name, weight) on for the duration, every adapter off afterwards, whatever
    happens: a request's LoRAs never reach the next request. No adapters: every LoRA off."""
    loaded = getattr(pipe.transformer, "_hf_peft_config_loaded", False)
    if adapters:
        pipe.enable_lora()
        pipe.set_adapters([name for name, _ in adapters], [weight for _, weight in adapters])
    elif loaded:
        pipe.disable_lora()
    try:
        yield
    finally:
        if loaded or adapters:
            pipe.disable_lora()


def request_adapters(request) -> list[tuple[str, float]]:
    """The request's LoRAs as (adapter name, weight), the engine having loaded them."""
    from ..loras import adapter_name

    return [(adapter_name(lora_id), float(weight)) for lora_id, weight in request.loras]


GUIDANCE_OFF = dict(
    guidance_scale=1.0,
    stg_scale=0.0,
    modality_scale=1.0,
    guidance_rescale=0.0,
    audio_guidance_scale=1.0,
    audio_stg_scale=0.0,
    audio_modality_scale=1.0,
    audio_guidance_rescale=0.0,
)
"""diffusers' switches for "no guidance": CFG, modality guidance at 1.0, STG and rescale at 0.0."""


def unshifted_scheduler(pipe):
    """The pipeline's scheduler, set to use given sigmas as they are (the distilled schedules are published so)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(
        pipe.scheduler.config, use_dynamic_shifting=False, shift=1.0, shift_terminal=None
    )


def pipelines_for(components, scheduler, images: tuple[ConditioningImage, ...] = ()):
    """A text-to-video, image-to-video (a first frame) or keyframe pipeline (images at other frames) and the upsample
    pipeline around the already loaded modules.

    No module is copied: only the (tiny) scheduler object is new."""
    from diffusers import LTX2ImageToVideoPipeline, LTX2LatentUpsamplePipeline, LTX2Pipeline

    base = components.pipeline
    if not images:
        pipeline_class = LTX2Pipeline
    else:
        pipeline_class = LTX2ImageToVideoPipeline if only_first_frame(images) else _keyframe_pipeline_class()
    denoise = pipeline_class(**{**base.components, "scheduler": scheduler})
    upsample = LTX2LatentUpsamplePipeline(vae=base.vae, latent_upsampler=components.latent_upsampler)
    for pipe in (denoise, upsample):
        pipe.set_progress_bar_config(disable=True)
    return denoise, upsample


def upsample_and_refine(
    denoise, upsample, plan, video_latents, audio_latents, images, clock: StageClock, **stage_2
) -> tuple[torch.Tensor, torch.Tensor]:
    """The second half every two-stage recipe shares: x2 latent upsampling, then the 3 distilled stage-2 sigmas at
    full size (re-noised to the first of them), guidance off. The frame images condition it again, encoded at full
    size (`image_conditioning`; a first frame replaces the first latent frame and stays clean)."""
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    video_latents = upsample(latents=video_latents, output_type="latent", return_dict=False)[0]
    conditioning = {}
    if only_first_frame(images):
        video_latents[:, :, :1] = encode_first_frame(denoise, images[0].pixels, plan.gen_width, plan.gen_height)
    elif images:
        conditioning = denoise.conditions(images)
    clock.lap("upsample")
    video_latents, audio_latents = denoise(
        latents=video_latents,
        audio_latents=audio_latents,
        width=plan.gen_width,
        height=plan.gen_height,
        num_frames=plan.gen_frames,
        frame_rate=float(plan.fps),
        sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
        noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],
        num_inference_steps=len(STAGE_2_DISTILLED_SIGMA_VALUES),
        output_type="latent",
        return_dict=False,
        **GUIDANCE_OFF,
        **conditioning,
        **stage_2,
    )
    clock.lap("stage_2")
    return video_latents, audio_latents
