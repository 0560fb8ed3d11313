"""A live preview of a clip while it denoises: a fixed linear map from the 128 latent channels to RGB.

The map is fitted once per VAE (least squares from latents to what the VAE decodes them into, averaged over each
latent pixel's 32x32 patch), so it follows whatever weights are loaded, the tiny random ones included. Each preview
projects one latent frame (the middle one) of the small stage-1 latents and encodes it as a PNG data URI: a matrix
product over a few hundred latent pixels, far cheaper than a denoising step (README, "Playground").
"""

from __future__ import annotations

import base64
import io
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .decode import decode_video_chunks
from .geometry import VAE_SPATIAL, GenerationPlan

PREVIEW_EVERY = 2
"""Denoising steps between two previews (and the last step of stage 1), by default (`LTX_PREVIEW_EVERY`). Each
preview reads one small latent frame back from the GPU without waiting for it (`HostCopy`): the denoising loop has
no device-to-host sync but the one at the end of stage 1."""
FIT_SIZE = 32
"""Latent pixels per side of the random latents the map is fitted on (1024 samples for 129 unknowns)."""

PreviewCallback = Callable[[str, int, int], None]
"""(a PNG data URI, stage-1 steps done, stage-1 steps)"""
_FITTED: dict[int, torch.Tensor] = {}


def rgb_projection(vae) -> torch.Tensor:
    """[129, 3]: RGB in [-1, 1] = [normalized latent channels, 1] @ projection; fitted on first use per VAE."""
    if id(vae) not in _FITTED:
        generator = torch.Generator().manual_seed(0)
        channels = vae.config.latent_channels
        normalized = torch.randn(1, channels, 1, FIT_SIZE, FIT_SIZE, generator=generator)
        latents = denormalize(vae, normalized.to(vae.device, vae.dtype))
        decoded = next(decode_video_chunks(vae, latents))[:, :, 0].float().cpu()  # [1, 3, H*32, W*32]
        colours = torch.nn.functional.avg_pool2d(decoded, VAE_SPATIAL)[0].reshape(3, -1).T  # [pixels, 3]
        samples = normalized[0, :, 0].reshape(channels, -1).T  # [pixels, channels]
        samples = torch.cat([samples, torch.ones(len(samples), 1)], dim=1)
        _FITTED[id(vae)] = torch.linalg.lstsq(samples, colours).solution
    return _FITTED[id(vae)]


def denormalize(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents as the denoiser sees them -> as the VAE decodes them (diffusers' LTX-2 `_denormalize_latents`)."""
    shape = (1, -1, 1, 1, 1)
    mean = vae.latents_mean.view(shape).to(latents)
    std = vae.latents_std.view(shape).to(latents)
    return latents * std / vae.config.scaling_factor + mean


class HostCopy:
    """A device tensor on its way to host memory without a sync: on CUDA copied asynchronously into pinned memory,
    with an event recorded behind the copy on the current stream; elsewhere a plain copy (a copy on the CPU too).
    `result()` waits for the event (long passed when read a denoising step or more later) and returns the host
    tensor."""

    def __init__(self, tensor: torch.Tensor):
        self.event = None
        if tensor.device.type != "cuda":
            self.host = tensor.to("cpu", copy=True)  # a copy even of a host tensor: it is read a step later
            return
        self.host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        self.host.copy_(tensor, non_blocking=True)
        self.event = torch.cuda.Event()
        self.event.record()

    def result(self) -> torch.Tensor:
        if self.event is not None:
            self.event.synchronize()
        return self.host


class LatentPreview:
    """The stage-1 step observer: every `every` steps, the middle latent frame as a small PNG for `on_image`. A
    step's frame is copied to the host without waiting (`HostCopy`) and turned into its image at the next preview
    step, when the copy is done; the last step of stage 1 sends its own and any pending one at once."""

    def __init__(self, vae, plan: GenerationPlan, stage_1_steps: int, on_image: PreviewCallback, every: int = PREVIEW_EVERY):
        self.every = every
        self.projection = rgb_projection(vae)
        self.shape = (plan.latent_frames, plan.stage1_height // VAE_SPATIAL, plan.stage1_width // VAE_SPATIAL)
        self.stage_1_steps = stage_1_steps
        self.on_image = on_image
        self.pending: tuple[HostCopy, int] | None = None
        """The last preview step's frame on its way to the host, and that step."""

    def __call__(self, packed_latents: torch.Tensor, done: int, total: int) -> None:
        if done % self.every and done != self.stage_1_steps:
            return
        frames, height, width = self.shape  # the packed latents may end in appended keyframe tokens: not the clip's
        clip = packed_latents[0, : frames * height * width]
        frame = clip.reshape(frames, height, width, -1)[frames // 2].float()
        if self.pending is not None:
            self._send(*self.pending)
        self.pending = (HostCopy(frame), done)
        if done == self.stage_1_steps:
            self._send(*self.pending)
            self.pending = None

    def _send(self, copy: HostCopy, done: int) -> None:
        self.on_image(self.image(copy.result()), done, self.stage_1_steps)

    def image(self, frame: torch.Tensor) -> str:
        """The middle latent frame [H, W, C] (float32, on the host) -> a PNG data URI, H x W pixels."""
        height, width = frame.shape[:2]
        rgb = torch.cat([frame, torch.ones(height, width, 1)], dim=2) @ self.projection
        pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
