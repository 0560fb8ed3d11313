"""Recipes: the denoising part of each model, from prompt to final latents. One recipe per file, read top to bottom."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

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


def step_reporter(on_step: StepCallback, steps_before: int, total_steps: int):
    """A diffusers `callback_on_step_end` that reports progress over the whole recipe."""

    def report(pipe, step: int, timestep, callback_kwargs):
        on_step(steps_before + step + 1, total_steps)
        return {}

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


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """Resize to cover width x height, then centre-crop: the first frame keeps its aspect ratio, never stretched."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.LANCZOS)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def encode_first_frame(pipe, image: Image.Image, width: int, height: int) -> torch.Tensor:
    """The image as the first latent frame at width x height, prepared as diffusers' image-to-video pipeline does
    (H.264 re-compression at the model's training CRF, then the VAE's mode), as raw (denormalized) latents."""
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf, resolve_default_image_crf

    frame = np.array(fit_image(image, width, height))
    frame = apply_image_conditioning_crf(frame, resolve_default_image_crf(pipe.text_encoder))
    pixels = pipe.video_processor.preprocess(Image.fromarray(frame), height=height, width=width)
    pixels = pixels.to(device=pipe.vae.device, dtype=pipe.vae.dtype).unsqueeze(2)  # [1, 3, 1, H, W]
    return pipe.vae.encode(pixels).latent_dist.mode()


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


def pipelines_for(components, scheduler, image_to_video: bool):
    """A text- or image-to-video pipeline and the upsample pipeline around the already loaded modules.

    No module is copied: only the (tiny) scheduler object is new."""
    from diffusers import LTX2ImageToVideoPipeline, LTX2LatentUpsamplePipeline, LTX2Pipeline

    base = components.pipeline
    pipeline_class = LTX2ImageToVideoPipeline if image_to_video else LTX2Pipeline
    denoise = pipeline_class(**{**base.components, "scheduler": scheduler})
    upsample = LTX2LatentUpsamplePipeline(vae=base.vae, latent_upsampler=components.latent_upsampler)
    for pipe in (denoise, upsample):
        pipe.set_progress_bar_config(disable=True)
    return denoise, upsample


def upsample_and_refine(
    denoise, upsample, plan, video_latents, audio_latents, image, clock: StageClock, **stage_2
) -> tuple[torch.Tensor, torch.Tensor]:
    """The second half every two-stage recipe shares: x2 latent upsampling, then the 3 distilled stage-2 sigmas at
    full size (re-noised to the first of them), guidance off. With a first-frame image, the image encoded at full
    size replaces the first latent frame and stays clean."""
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    video_latents = upsample(latents=video_latents, output_type="latent", return_dict=False)[0]
    if image is not None:
        video_latents[:, :, :1] = encode_first_frame(denoise, image, plan.gen_width, plan.gen_height)
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
        **stage_2,
    )
    clock.lap("stage_2")
    return video_latents, audio_latents
