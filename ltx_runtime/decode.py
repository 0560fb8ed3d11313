"""Latents to pixels and samples, a chunk at a time.

A whole clip as float32 is far too big to hold (8 s of 1080p is 5 GB, 10 s of 4K at 50 fps 50 GB), so the video VAE
decodes overlapping temporal tiles and each finished chunk is cropped, turned into uint8 (RGB, and/or yuv420p for the
encoder: the `gpu_colour` lever) and handed on at once, with only two tiles alive at a time. The temporal tiles are
ltx-core's (`split_temporal_latents` / `split_temporal_causal`, identical in 1.0.0 and v1.2.0): every tile after the
first starts one latent frame early, whose decoded frame (the causal decoder's single first frame) gets weight 0, and
the tiles are blended by linear ramps over their overlap (`temporal_tiles`). Spatial tiling applies inside each tile
through diffusers' `vae.decode`, which blends its own way (docs/fidelity.md).

Tile sizes are v1.2.0's (ltx-pipelines utils/helpers.py `tiling_config_for_vae`, conv VAE): temporal tiles of 80
frames overlapping by 24 (speed.py sets them on the VAE), spatial tiles of 768 px along the long side and the same
share of the short side, overlapping by 64 px (`OFFICIAL_TILES`, set by `tiling`). ltx-core 1.0.0's
`TilingConfig.default()` was 512 px / 64 frames. On a card with memory to spare the plan may pick `LARGER_TILES`
(admission.py `choose_tiles`, the `vae_tiles` lever in speed.py): whole frames, in temporal tiles of 160 or 80 frames,
which decode fewer overlapping pixels and frames twice.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from . import diffusion_decode
from .colour import rgb_to_yuv420p
from .geometry import (  # noqa: F401 - the tiles' arithmetic lives with the rest of the shape arithmetic
    LARGER_TILES,
    MIN_DECODE_TILE_LATENTS,
    OFFICIAL_TILES,
    SPATIAL_TILE_LONG_SIDE,
    SPATIAL_TILE_OVERLAP,
    TEMPORAL_TILE_FRAMES,
    TEMPORAL_TILE_OVERLAP,
    DecodeTiles,
    GenerationPlan,
    crop_frames,
    spatial_tile_size,
    thinnest_decode_tile,
    tile_overlap,
    trim_frames,
)

def decode_long_side(gen_height: int, gen_width: int, frugal: bool) -> int:
    """The spatial tiles' long side for a decode: the official one, or for a frugal decode (after an out-of-memory)
    half of it, a quarter of the area, unless half tiles would leave a strip the decoder cannot take (2560x1440)."""
    half = SPATIAL_TILE_LONG_SIDE // 2
    if frugal and thinnest_decode_tile(gen_height, gen_width, half) >= MIN_DECODE_TILE_LATENTS:
        return half
    return SPATIAL_TILE_LONG_SIDE


@contextmanager
def tiling(vae, height: int, width: int, tiles: DecodeTiles = OFFICIAL_TILES):
    """The VAE with `tiles` for a height x width decode for the duration, untiled and with its own temporal tiles
    again after (so that nothing else, such as the next request's image encode, inherits them). Temporal tiles are
    streamed by `decode_video_chunks`, never done inside the VAE."""
    temporal = vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames
    if tiles.frames is not None:
        vae.tile_sample_min_num_frames = tiles.frames
        vae.tile_sample_stride_num_frames = tiles.frames - tile_overlap(tiles.frames)
    if tiles.long_side is not None:
        tile_height, tile_width = spatial_tile_size(height, width, tiles.long_side)
        vae.enable_tiling(
            tile_sample_min_height=tile_height, tile_sample_min_width=tile_width,
            tile_sample_stride_height=tile_height - SPATIAL_TILE_OVERLAP, tile_sample_stride_width=tile_width - SPATIAL_TILE_OVERLAP,
        )  # fmt: skip
    vae.use_framewise_decoding = False
    try:
        yield vae
    finally:
        vae.disable_tiling()
        vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = temporal


@dataclass(frozen=True)
class TemporalTile:
    latent_start: int
    latent_end: int
    blend: int
    """Decoded frames at the start of this tile that overlap the previous one (0 for the first tile)."""
    keep: int
    """Decoded frames this tile contributes to the output (after blending with the previous tile)."""


def temporal_tiles(latent_frames: int, tile_frames: int, overlap_frames: int, compression: int) -> list[TemporalTile]:
    """ltx-core's causal temporal tiles for `latent_frames` latent frames (tile and overlap in frames): tiles of
    `tile_frames // compression` latents, the later ones starting one latent early; each tile overlaps the previous
    one by `overlap_frames + 1` decoded frames."""
    size, overlap = tile_frames // compression, overlap_frames // compression
    total = (latent_frames - 1) * compression + 1
    if latent_frames <= size:
        return [TemporalTile(0, latent_frames, 0, total)]
    count = (latent_frames + size - 2 * overlap - 1) // (size - overlap)
    starts = [0] + [index * (size - overlap) - 1 for index in range(1, count)]
    ends = [start + size + (1 if index else 0) for index, start in enumerate(starts[:-1])] + [latent_frames]
    first_frames = [start * compression for start in starts]  # where each tile's first decoded frame belongs
    keeps = [following - first for first, following in zip(first_frames, first_frames[1:] + [total])]
    return [
        TemporalTile(start, end, 0 if index == 0 else overlap * compression + 1, keep)
        for index, (start, end, keep) in enumerate(zip(starts, ends, keeps))
    ]


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
    overlap = vae.tile_sample_min_num_frames - vae.tile_sample_stride_num_frames
    tiles = temporal_tiles(latents.shape[2], vae.tile_sample_min_num_frames, overlap, vae.temporal_compression_ratio)
    previous = None
    for tile in tiles:
        # Inference mode around the work only, never around a yield, so it cannot leak into the consumer.
        with torch.inference_mode(), _clocked(timings, "vae_decode", latents.device):
            decoded = vae.decode(latents[:, :, tile.latent_start : tile.latent_end], timestep, return_dict=False)[0]
            if tile.blend:
                # ltx-core's complementary trapezoid masks: the new tile's weight rises as k / blend over the
                # overlap, from 0 on its first frame (the previous tile's last blend frames)
                weight = torch.arange(tile.blend, device=decoded.device, dtype=decoded.dtype) / tile.blend
                weight = weight.view(1, 1, -1, 1, 1)
                shared = previous[:, :, previous.shape[2] - tile.blend :]
                decoded[:, :, : tile.blend] = shared * (1 - weight) + decoded[:, :, : tile.blend] * weight
        previous = decoded
        yield decoded[:, :, : tile.keep]


def rgb_levels(chunk: torch.Tensor) -> torch.Tensor:
    """[1, 3, f, H, W] floats in [-1, 1] -> the uint8 levels [3, f, H, W] as float32 (0-255, whole numbers),
    truncated as ltx-core's `decode_video` does (diffusers' video processor rounds instead: half the values would be
    one step higher than the official ones)."""
    return ((chunk[0].float() + 1.0) / 2.0).clamp_(0, 1).mul_(255).floor_()


def to_uint8_frames(chunk: torch.Tensor) -> np.ndarray:
    """[1, 3, f, H, W] floats in [-1, 1] -> [f, H, W, 3] uint8 on the host (`rgb_levels`)."""
    return _host_rgb(rgb_levels(chunk))


def _host_rgb(levels: torch.Tensor) -> np.ndarray:
    return levels.to(torch.uint8).permute(1, 2, 3, 0).contiguous().cpu().numpy()


YUV_SLICE_FRAMES = 8
"""Frames converted to yuv420p at a time: the conversion's float32 temporaries (about 7 planes a frame) stay under
2 GB at 4K whatever the temporal tile's length."""


def _host_yuv420p(levels: torch.Tensor) -> np.ndarray:
    slices = range(0, levels.shape[1], YUV_SLICE_FRAMES)
    return torch.cat([rgb_to_yuv420p(levels[:, start : start + YUV_SLICE_FRAMES]) for start in slices]).cpu().numpy()


DIFFUSION_CHUNK_FRAMES = 8
"""Frames of the diffusion decoder's output converted and handed on at a time: it decodes the whole clip at once
(diffusers' design, counted by admission.py), and a chunk's float32 levels stay under 1 GB at 4K."""


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive output frames, in the forms that were asked for."""

    rgb: np.ndarray | None
    """[f, H, W, 3] uint8: for the rgb24 encode and for whatever looks at the frames (the content check)."""
    yuv420p: np.ndarray | None = None
    """[f, H * W * 3 / 2] uint8, planar BT.709 limited range (colour.rgb_to_yuv420p): for the yuv420p encode."""

    def __len__(self) -> int:
        return len(self.rgb if self.rgb is not None else self.yuv420p)


def video_frames(
    vae, latents: torch.Tensor, plan: GenerationPlan, timings: dict[str, float] | None = None, *,
    rgb: bool = True, yuv420p: bool = False, diffusion_decoder=None, generator: torch.Generator | None = None,
) -> Iterator[FrameChunk]:  # fmt: skip
    """Exactly `plan.frames` frames of `plan.width` x `plan.height`, in chunks, as uint8 RGB and/or yuv420p,
    converted on the device the VAE ran on (on CUDA the host receives a quarter of float32's bytes, yuv420p an
    eighth); the conversion's time goes to `timings["to_uint8"]`. With `diffusion_decoder` (LTX-2.5's,
    diffusion_decode.py) that decodes instead of `vae`, the whole clip at once from `generator`'s noise, converted
    `DIFFUSION_CHUNK_FRAMES` at a time."""
    if diffusion_decoder is None:
        decoded = decode_video_chunks(vae, latents.to(vae.dtype), timings)
    else:
        with _clocked(timings, "vae_decode", latents.device):
            clip = diffusion_decode.decode(diffusion_decoder, latents, generator)
        starts = range(0, clip.shape[2], DIFFUSION_CHUNK_FRAMES)
        decoded = (clip[:, :, start : start + DIFFUSION_CHUNK_FRAMES] for start in starts)
    chunks = (crop_frames(chunk, plan) for chunk in decoded)
    for chunk in trim_frames(chunks, plan.frames, frame_axis=2):
        with _clocked(timings, "to_uint8", chunk.device):
            levels = rgb_levels(chunk)
            frames = FrameChunk(
                rgb=_host_rgb(levels) if rgb else None,
                yuv420p=_host_yuv420p(levels) if yuv420p else None,
            )
        yield frames


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
