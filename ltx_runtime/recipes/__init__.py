"""Recipes: the denoising part of each model, from prompt to final latents. One recipe per file, read top to bottom."""

from __future__ import annotations

import time
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
