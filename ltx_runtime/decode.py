"""Latents to pixels and samples, a chunk at a time.

A whole clip as float32 is far too big to hold (8 s of 1080p is 5 GB, 10 s of 4K at 50 fps 50 GB), so the video VAE
decodes overlapping temporal tiles and each finished chunk is cropped, turned into uint8 and handed on at once. The
tiling is diffusers' own temporal tiling (`AutoencoderKLLTX2Video._temporal_tiled_decode`: tiles of
`tile_sample_min_num_frames`, a stride of `tile_sample_stride_num_frames`, linear blending over the overlap),
restructured as a generator so that only two tiles are alive at a time. Spatial tiling applies inside each tile
through `vae.decode`.

Tile sizes are the official ones (ltx-pipelines utils/helpers.py, conv VAE): temporal tiles of 80 frames overlapping
by 24 (speed.py sets them on the VAE), spatial tiles of 768 px along the long side and the same share of the short
side, overlapping by 64 px (`official_tiling`). Diffusers blends overlaps linearly, the same trapezoid the official
decoder uses.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .geometry import GenerationPlan, crop_frames, trim_frames


SPATIAL_TILE_LONG_SIDE = 768
SPATIAL_TILE_OVERLAP = 64
TEMPORAL_TILE_FRAMES = 80
TEMPORAL_TILE_OVERLAP = 24


def spatial_tile_size(height: int, width: int, long_side: int = SPATIAL_TILE_LONG_SIDE, factor: int = 32) -> tuple[int, int]:
    """(tile height, tile width) in pixels for a height x width decode: `long_side` along the longer axis, the
    same share of the shorter one, on the latent grid (ltx-core `TileSizeConfig.from_long_side`)."""
    span = max(height, width)

    def axis(length: int) -> int:
        overlap_latents = SPATIAL_TILE_OVERLAP // factor
        latents = max(max(2, overlap_latents + 1), round((long_side // factor) * (length // factor) / (span // factor)))
        return max(latents * factor, 2 * factor, SPATIAL_TILE_OVERLAP + factor)

    return axis(height), axis(width)


@contextmanager
def official_tiling(vae, height: int, width: int, long_side: int = SPATIAL_TILE_LONG_SIDE):
    """The VAE with the official spatial tiles for a height x width decode for the duration, untiled again after
    (so that nothing else, such as the next request's image encode, inherits them). Temporal tiles are streamed by
    `decode_video_chunks`, never done inside the VAE."""
    tile_height, tile_width = spatial_tile_size(height, width, long_side)
    vae.enable_tiling(
        tile_sample_min_height=tile_height, tile_sample_min_width=tile_width,
        tile_sample_stride_height=tile_height - SPATIAL_TILE_OVERLAP, tile_sample_stride_width=tile_width - SPATIAL_TILE_OVERLAP,
    )  # fmt: skip
    vae.use_framewise_decoding = False
    try:
        yield vae
    finally:
        vae.disable_tiling()


@dataclass(frozen=True)
class TemporalTile:
    latent_start: int
    latent_end: int
    keep: int
    """Decoded frames this tile contributes to the output (after blending with the previous tile)."""


def temporal_tiles(latent_frames: int, tile_frames: int, stride_frames: int, compression: int) -> list[TemporalTile]:
    """The tiles diffusers' temporal tiled decode uses for `latent_frames` latent frames (sample-frame parameters)."""
    tile_latents = tile_frames // compression
    stride_latents = stride_frames // compression
    total = (latent_frames - 1) * compression + 1
    tiles, emitted = [], 0
    for start in range(0, latent_frames, stride_latents):
        keep = min(stride_frames + (1 if start == 0 else 0), total - emitted)
        if keep <= 0:
            break
        tiles.append(TemporalTile(start, min(start + tile_latents + 1, latent_frames), keep))
        emitted += keep
    return tiles


@contextmanager
def _clocked(timings: dict[str, float] | None, stage: str, device: torch.device):
    """Add the wall time of a block (GPU work finished included) to `timings[stage]`."""
    started = time.perf_counter()
    yield
    if timings is not None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def decode_video_chunks(vae, latents: torch.Tensor, timings: dict[str, float] | None = None) -> Iterator[torch.Tensor]:
    """Decode denormalized video latents [1, C, F, H, W] into float frame chunks [1, 3, f, H*32, W*32] in [-1, 1];
    the time spent in the VAE is added to `timings["vae_decode"]`."""
    timestep = None
    if vae.config.timestep_conditioning:
        # As the pipeline does with its default decode_timestep of 0.0 (which also means no decode noise).
        timestep = torch.zeros(latents.shape[0], device=latents.device, dtype=latents.dtype)
    blend = vae.tile_sample_min_num_frames - vae.tile_sample_stride_num_frames
    previous = None
    tiles = temporal_tiles(
        latents.shape[2], vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames, vae.temporal_compression_ratio
    )
    for tile in tiles:
        # Inference mode around the work only, never around a yield, so it cannot leak into the consumer.
        with torch.inference_mode(), _clocked(timings, "vae_decode", latents.device):
            decoded = vae.decode(latents[:, :, tile.latent_start : tile.latent_end], timestep, return_dict=False)[0]
            if tile.latent_start > 0:
                decoded = vae.blend_t(previous, decoded[:, :, :-1], blend)
        previous = decoded
        yield decoded[:, :, : tile.keep]


def to_uint8_frames(chunk: torch.Tensor) -> np.ndarray:
    """[1, 3, f, H, W] floats in [-1, 1] -> [f, H, W, 3] uint8, truncated as ltx-core's `decode_video` does
    (diffusers' video processor rounds instead: half the values would be one step higher than the official ones)."""
    frames = ((chunk[0].float() + 1.0) / 2.0).clamp(0, 1).mul(255).to(torch.uint8)
    return frames.permute(1, 2, 3, 0).contiguous().cpu().numpy()


def video_frames(
    vae, latents: torch.Tensor, plan: GenerationPlan, timings: dict[str, float] | None = None
) -> Iterator[np.ndarray]:
    """Exactly `plan.frames` frames of `plan.width` x `plan.height`, as uint8 chunks [f, H, W, 3]."""
    chunks = (crop_frames(chunk, plan) for chunk in decode_video_chunks(vae, latents.to(vae.dtype), timings))
    for chunk in trim_frames(chunks, plan.frames, frame_axis=2):
        yield to_uint8_frames(chunk)


def audio_waveform(
    audio_vae, vocoder, audio_latents: torch.Tensor, plan: GenerationPlan, timings: dict[str, float] | None = None
) -> np.ndarray:
    """Decode denormalized audio latents to exactly `plan.audio_samples` stereo float32 samples [samples, 2]; the
    vocoder's share of the time goes to `timings["vocoder"]`."""
    with torch.inference_mode():
        mel = audio_vae.decode(audio_latents.to(audio_vae.dtype), return_dict=False)[0]
        with _clocked(timings, "vocoder", mel.device):
            waveform = vocoder(mel.to(vocoder.dtype))[0].float().cpu().numpy()
    waveform = waveform[:, : plan.audio_samples]
    # The causal audio VAE drops 3 mel frames (30 ms), and the pipeline rounds the audio latent count to the
    # nearest: decoded audio can fall up to 30 ms short (of the hosted combinations, 8 s at 50 fps does), and the
    # tail is then padded with silence.
    missing = plan.audio_samples - waveform.shape[1]
    if missing > 0:
        waveform = np.pad(waveform, ((0, 0), (0, missing)))
    return np.ascontiguousarray(waveform.T, dtype=np.float32)
