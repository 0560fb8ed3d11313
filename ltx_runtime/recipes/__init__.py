"""Recipes: the denoising part of each model, from prompt to final latents. One recipe per file, read top to bottom."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

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
