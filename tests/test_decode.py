"""Streaming decode: the same pixels as diffusers' own temporal tiled decode, a chunk at a time, exact lengths."""

import numpy as np
import pytest
import torch
from diffusers import LTX2Pipeline

from ltx_runtime.decode import (
    audio_waveform,
    decode_video_chunks,
    official_tiling,
    spatial_tile_size,
    temporal_tiles,
    to_uint8_frames,
    video_frames,
)
from ltx_runtime.geometry import plan_generation


@pytest.fixture(scope="module")
def pipeline(tiny_weights):
    return LTX2Pipeline.from_pretrained(tiny_weights, dtype=torch.float32, local_files_only=True)


@pytest.mark.parametrize("latent_frames", [1, 2, 3, 5, 20, 64])
@pytest.mark.parametrize("tile_frames, stride_frames", [(16, 8), (80, 56)])
def test_tiles_cover_every_frame_once(latent_frames, tile_frames, stride_frames):
    tiles = temporal_tiles(latent_frames, tile_frames=tile_frames, stride_frames=stride_frames, compression=8)
    assert sum(tile.keep for tile in tiles) == (latent_frames - 1) * 8 + 1
    assert tiles[0].latent_start == 0 and tiles[-1].latent_end == latent_frames


@pytest.mark.parametrize(
    "height, width, tile",
    [(1088, 1920, (448, 768)), (1920, 1088, (768, 448)), (2176, 3840, (448, 768)), (1472, 2560, (448, 768)),
     (576, 1024, (448, 768)), (128, 256, (384, 768))],
)  # fmt: skip
def test_spatial_tiles_are_the_official_ones(height, width, tile):
    """768 px along the long side and the same share of the short side on the latent grid (ltx-core
    TileSizeConfig.from_long_side: 1088x1920 gives round(24 x 34 / 60) = 14 latents = 448 px)."""
    assert spatial_tile_size(height, width) == tile


def test_official_tiling_is_scoped_to_the_decode(pipeline):
    vae = pipeline.vae
    with official_tiling(vae, 1088, 1920):
        assert vae.use_tiling and not vae.use_framewise_decoding
        assert (vae.tile_sample_min_height, vae.tile_sample_min_width) == (448, 768)
        assert (vae.tile_sample_stride_height, vae.tile_sample_stride_width) == (384, 704)  # 64 px overlap
    assert not vae.use_tiling


@pytest.mark.parametrize("tile_frames, stride_frames, latent_frames", [(16, 8, 6), (80, 56, 24)])
def test_streamed_chunks_equal_diffusers_temporal_tiled_decode(pipeline, tile_frames, stride_frames, latent_frames):
    vae = pipeline.vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = tile_frames, stride_frames
    latents = torch.randn(1, vae.config.latent_channels, latent_frames, 2, 3, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        vae.use_framewise_decoding = True
        reference = vae.decode(latents, return_dict=False)[0]
        vae.use_framewise_decoding = False
        chunks = list(decode_video_chunks(vae, latents))
    assert len(chunks) > 2  # really streamed
    assert max(chunk.shape[2] for chunk in chunks) <= vae.tile_sample_stride_num_frames + 1
    streamed = torch.cat(chunks, dim=2)
    assert streamed.shape == reference.shape == (1, 3, (latent_frames - 1) * 8 + 1, 64, 96)
    torch.testing.assert_close(streamed, reference, rtol=0, atol=0)


def test_video_frames_are_cropped_trimmed_uint8(pipeline):
    plan = plan_generation(200, 104, 1, 17, 24000)  # generates 256x128, 17 frames; keeps 200x104, 17 frames
    latents = torch.randn(1, 8, plan.latent_frames, plan.gen_height // 32, plan.gen_width // 32)
    chunks = list(video_frames(pipeline.vae, latents, plan))
    assert all(chunk.dtype == np.uint8 and chunk.shape[1:] == (104, 200, 3) for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == 17

    plan = plan_generation(200, 104, 1, 10, 24000)  # 10 frames wanted out of 17 generated
    assert sum(len(chunk) for chunk in video_frames(pipeline.vae, latents, plan)) == 10


def test_uint8_conversion_truncates_as_ltx_core():
    chunk = torch.tensor([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 6, 1, 1).expand(1, 3, 6, 1, 1)
    frames = to_uint8_frames(chunk)
    assert frames.shape == (6, 1, 1, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 0, 127, 191, 255, 255]  # 127.5 and 191.25 truncated


@pytest.mark.parametrize("duration, fps", [(2, 25), (1, 17), (8, 50)])
def test_audio_has_exactly_the_requested_samples(pipeline, duration, fps):
    plan = plan_generation(64, 64, duration, fps, 24000)
    latent_length = round(plan.gen_frames / fps * 25)  # what the pipeline generates
    latents = torch.randn(1, 2, latent_length, 16)
    waveform = audio_waveform(pipeline.audio_vae, pipeline.vocoder, latents, plan)
    assert waveform.shape == (duration * 24000, 2)
    assert waveform.dtype == np.float32
    assert np.abs(waveform[: 24000 // 2]).max() > 0  # real signal, not padding
