"""Shape arithmetic: what the model generates for a requested clip, and how it is cut back to the request.

The two-stage recipes need a generation size that is a multiple of 64 (stage 1 runs at half size on a 32x VAE grid)
and a frame count of the form 8k+1 (the causal video VAE). We generate the next such size and frame count at or above
the request, then crop (centred) and trim so the output is exactly `width` x `height`, `duration * fps` frames and
`duration` seconds of audio. Example: 1920x1080, 6 s at 25 fps -> generate 1920x1088 and 153 frames, keep rows 4..1083
and the first 150 frames, and 144000 audio samples at 24 kHz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

SIZE_MULTIPLE = 64
VAE_SPATIAL = 32
VAE_TEMPORAL = 8
AUDIO_LATENTS_PER_SECOND = 25  # 16 kHz mel, hop 160, 4x latent compression
SPATIAL_TILE_LONG_SIDE = 768
"""The official spatial decode tile along the long side (decode.py); the frugal memory profiles use half of it."""
SPATIAL_TILE_OVERLAP = 64
MIN_DECODE_TILE_LATENTS = 2
"""The VAE decoder pads each spatial tile by reflection, one latent on each side: a tile needs at least two."""

TEMPORAL_TILE_FRAMES = 80
TEMPORAL_TILE_OVERLAP = 24


def tile_overlap(tile_frames: int) -> int:
    """Frames two temporal VAE tiles share: half a tile, at most the official 24 (80 -> 24, diffusers' 16 -> 8)."""
    return min(tile_frames // 2, TEMPORAL_TILE_OVERLAP)


@dataclass(frozen=True)
class DecodeTiles:
    """The tiles of one video decode."""

    long_side: int | None
    """The spatial tiles' long side in pixels (the short side gets the same share); None: whole frames."""
    frames: int | None = None
    """The temporal tiles' length in frames (overlapping by `tile_overlap`); None: as set on the VAE (speed.py: the
    official 80, or the `vae_tile_frames` setting)."""

    def __str__(self) -> str:
        spatial = "whole frames" if self.long_side is None else f"{self.long_side} px tiles"
        return spatial + ("" if self.frames is None else f", {self.frames}-frame temporal tiles")


OFFICIAL_TILES = DecodeTiles(SPATIAL_TILE_LONG_SIDE)
LARGER_TILES = (DecodeTiles(None, 2 * TEMPORAL_TILE_FRAMES), DecodeTiles(None, TEMPORAL_TILE_FRAMES))
"""What the plan may pick instead of the official tiles when the decode fits the budget with them, largest first."""


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def frames_for_vae(frames: int) -> int:
    """The smallest 8k+1 frame count that holds `frames` frames."""
    return round_up(max(frames - 1, 0), VAE_TEMPORAL) + 1


@dataclass(frozen=True)
class GenerationPlan:
    width: int
    height: int
    fps: int
    duration: float
    frames: int
    """Frames in the output file: duration x fps."""
    audio_samples: int
    """Samples per channel in the output file: duration x sample rate."""
    sample_rate: int
    gen_width: int
    gen_height: int
    gen_frames: int
    crop_left: int
    crop_top: int

    @property
    def stage1_width(self) -> int:
        return self.gen_width // 2

    @property
    def stage1_height(self) -> int:
        return self.gen_height // 2

    @property
    def latent_frames(self) -> int:
        return (self.gen_frames - 1) // VAE_TEMPORAL + 1

    @property
    def stage2_tokens(self) -> int:
        """Video tokens per transformer pass in stage 2 (one per latent voxel, patch size 1)."""
        return self.latent_frames * (self.gen_height // VAE_SPATIAL) * (self.gen_width // VAE_SPATIAL)


def plan_generation(width: int, height: int, duration: float, fps: int, sample_rate: int) -> GenerationPlan:
    frames = duration * fps
    if frames <= 0 or not math.isclose(frames, round(frames)):
        raise ValueError(f"duration {duration} s at {fps} fps is not a whole number of frames")
    frames = round(frames)
    samples = duration * sample_rate
    gen_width, gen_height = round_up(width, SIZE_MULTIPLE), round_up(height, SIZE_MULTIPLE)
    return GenerationPlan(
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        frames=frames,
        audio_samples=round(samples),
        sample_rate=sample_rate,
        gen_width=gen_width,
        gen_height=gen_height,
        gen_frames=frames_for_vae(frames),
        crop_left=(gen_width - width) // 2,
        crop_top=(gen_height - height) // 2,
    )


def crop_frames(chunk, plan: GenerationPlan):
    """Centre-crop a chunk of decoded frames laid out [..., height, width] to the requested size (a view)."""
    return chunk[..., plan.crop_top : plan.crop_top + plan.height, plan.crop_left : plan.crop_left + plan.width]


def trim_frames(chunks: Iterable, total: int, frame_axis: int) -> Iterator:
    """Pass chunks of frames through until `total` frames have gone by, cutting the last chunk short."""
    remaining = total
    for chunk in chunks:
        if remaining <= 0:
            return
        count = chunk.shape[frame_axis]
        if count > remaining:
            index = [slice(None)] * chunk.ndim
            index[frame_axis] = slice(0, remaining)
            chunk = chunk[tuple(index)]
            count = remaining
        remaining -= count
        yield chunk
    if remaining > 0:
        raise RuntimeError(f"the decoder produced {total - remaining} frames, {total} were needed")


def spatial_tile_size(height: int, width: int, long_side: int = SPATIAL_TILE_LONG_SIDE, factor: int = 32) -> tuple[int, int]:
    """(tile height, tile width) in pixels for a height x width decode: `long_side` along the longer axis, the
    same share of the shorter one, on the latent grid (ltx-core `TileSizeConfig.from_long_side`)."""
    span = max(height, width)

    def axis(length: int) -> int:
        overlap_latents = SPATIAL_TILE_OVERLAP // factor
        latents = max(max(2, overlap_latents + 1), round((long_side // factor) * (length // factor) / (span // factor)))
        return max(latents * factor, 2 * factor, SPATIAL_TILE_OVERLAP + factor)

    return axis(height), axis(width)


def thinnest_decode_tile(gen_height: int, gen_width: int, long_side: int = SPATIAL_TILE_LONG_SIDE) -> int:
    """The fewest latent rows or columns a spatial tile of the tiled VAE decode gets at this generation size.
    Diffusers' `tiled_decode` (used when the latents exceed one tile) starts a tile every stride latents along each
    axis and gives it what is left of the axis, up to a whole tile; an untiled decode gets the whole latent grid."""
    tile_height, tile_width = spatial_tile_size(gen_height, gen_width, long_side)
    rows, columns = gen_height // VAE_SPATIAL, gen_width // VAE_SPATIAL
    tile_rows, tile_columns = tile_height // VAE_SPATIAL, tile_width // VAE_SPATIAL
    if rows <= tile_rows and columns <= tile_columns:
        return min(rows, columns)

    def thinnest(length: int, tile: int) -> int:
        stride = tile - SPATIAL_TILE_OVERLAP // VAE_SPATIAL
        return min(min(tile, length - start) for start in range(0, length, stride))

    return min(thinnest(rows, tile_rows), thinnest(columns, tile_columns))


def undecodable_size(width: int, height: int) -> str | None:
    """Why a width x height clip cannot be decoded with the official spatial tiles (a tile too thin for the
    decoder); None when it can. Examples: 1024x64, 64x1024 and 832x64 cannot, 1024x256 can."""
    gen_width, gen_height = round_up(width, SIZE_MULTIPLE), round_up(height, SIZE_MULTIPLE)
    if thinnest_decode_tile(gen_height, gen_width) < MIN_DECODE_TILE_LATENTS:
        return (
            f"{width}x{height} cannot be decoded: the VAE's tiled decode would leave a strip {VAE_SPATIAL} px wide, "
            f"and its decoder needs {MIN_DECODE_TILE_LATENTS * VAE_SPATIAL} px (a less elongated size works)"
        )
    return None
