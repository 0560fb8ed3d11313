"""The Euler-ancestral sampler of LTX-2.5 Fast's stage 1, as a diffusers scheduler.

Lightricks' `DistilledPipeline` (ltx-pipelines 1.2.0, commit 400fd31, distilled.py) samples stage 1 of checkpoints
from generation 2.5 on with `EulerAncestralDiffusionStep(eta=1, s_noise=1)` in `euler_ancestral_denoising_loop`, whose
noise generator is seeded with the pipeline seed + 10000; stage 2 stays deterministic. diffusers' `LTX2Pipeline` has
no such sampler, so the recipe hands it this scheduler. Each step, in float32 (ltx-core diffusion_steps.py):

    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    x = (sigma_down / sigma) * x + (1 - sigma_down / sigma) * x0                 Euler step down to sigma_down
    x = (alpha_next / alpha_down) * x + s_noise * sqrt(max(0, sigma_next^2 - sigma_down^2 * alpha_next^2 /
        alpha_down^2)) * noise, with alpha = 1 - sigma                           re-noise back up to sigma_next

and the last step (sigma_next = 0) returns x0. Video and audio draw their noise from one generator, video first, each
in the shape of its whole packed latent [batch, tokens, channels] (the official loop draws for the full latent and
then restores the conditioned tokens; diffusers' image-to-video pipeline steps the frames after the first only, so
their share is cut out of a full-size draw, and the stream stays the official one).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

ANCESTRAL_ARCHITECTURES = ("ltx-2.5",)
"""Architectures whose distilled stage 1 is ancestral (officially: checkpoints with model_version >= 2.5)."""
ETA = 1.0
S_NOISE = 1.0
NOISE_SEED_OFFSET = 10000
"""Keeps the loop's first draw from repeating the initial latent noise, which the same seed drew (distilled.py)."""


def euler_ancestral_step(
    sample: torch.Tensor,
    denoised: torch.Tensor,
    sigma: float,
    sigma_next: float,
    noise: torch.Tensor,
    eta: float = ETA,
    s_noise: float = S_NOISE,
) -> torch.Tensor:
    """One ancestral Euler step of a rectified-flow model from `sigma` to `sigma_next` (see the module docstring)."""
    if sigma_next == 0:
        return denoised.to(sample.dtype)
    x, x0 = sample.to(torch.float32), denoised.to(torch.float32)
    sigma, sigma_next = torch.tensor(sigma, dtype=torch.float32), torch.tensor(sigma_next, dtype=torch.float32)
    sigma_down = sigma_next * (1.0 + (sigma_next / sigma - 1.0) * eta)
    ratio = sigma_down / sigma
    x = ratio * x + (1.0 - ratio) * x0
    if eta > 0:
        alpha_next, alpha_down = 1.0 - sigma_next, 1.0 - sigma_down
        renoise = (sigma_next**2 - sigma_down**2 * alpha_next**2 / alpha_down**2).clamp(min=0) ** 0.5
        x = (alpha_next / alpha_down) * x + noise.to(torch.float32) * s_noise * renoise
    return x.to(sample.dtype)


class SharedNoise:
    """The one seeded generator both modalities draw their step noise from. The pipeline deep-copies its scheduler
    for the audio latents; the copy must draw from the same stream, so copying returns this very object."""

    def __init__(self, seed: int):
        self.seed = seed
        self.generator: torch.Generator | None = None

    def __deepcopy__(self, memo) -> "SharedNoise":
        return self

    def draw(self, sample: torch.Tensor) -> torch.Tensor:
        """Noise for one step of `sample`: packed [B, tokens, C] latents as they are; unpacked video latents
        [B, C, F - 1, H, W] (image-to-video steps every frame but the conditioned first) get the frames after the
        first of a draw for the whole packed latent [B, F * H * W, C]. The generator lives on the latents' device, as
        the official loop's."""
        if self.generator is None:
            self.generator = torch.Generator(sample.device).manual_seed(self.seed)
        if sample.ndim == 3:
            return torch.randn(sample.shape, generator=self.generator, dtype=sample.dtype, device=sample.device)
        batch, channels, frames, height, width = sample.shape
        full = torch.randn((batch, (frames + 1) * height * width, channels), generator=self.generator,
                           dtype=sample.dtype, device=sample.device)  # fmt: skip
        return full.reshape(batch, frames + 1, height, width, channels).permute(0, 4, 1, 2, 3)[:, :, 1:]


class EulerAncestralScheduler(FlowMatchEulerDiscreteScheduler):
    """diffusers' flow-match scheduler (its sigmas and timesteps) stepping with `euler_ancestral_step`; the
    pipeline's velocity prediction v gives x0 = x - sigma * v. `noise` must be set before the pipeline runs."""

    noise: SharedNoise | None = None

    def step(self, model_output, timestep, sample, *args, return_dict: bool = True, **kwargs):
        from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteSchedulerOutput

        if self.step_index is None:
            self._init_step_index(timestep)
        sigma = float(self.sigmas[self.step_index])
        sigma_next = float(self.sigmas[self.step_index + 1])
        denoised = sample.to(torch.float32) - sigma * model_output.to(torch.float32)
        noise = None if sigma_next == 0 else self.noise.draw(sample)
        previous = euler_ancestral_step(sample, denoised, sigma, sigma_next, noise)
        self._step_index += 1
        return FlowMatchEulerDiscreteSchedulerOutput(prev_sample=previous) if return_dict else (previous,)


def ancestral_scheduler(scheduler: FlowMatchEulerDiscreteScheduler, seed: int) -> EulerAncestralScheduler:
    """`scheduler`'s configuration as an EulerAncestralScheduler drawing from seed + NOISE_SEED_OFFSET."""
    ancestral = EulerAncestralScheduler.from_config(scheduler.config)
    ancestral.noise = SharedNoise(seed + NOISE_SEED_OFFSET)
    return ancestral
