"""Streaming decode: ltx-core's temporal tiles, a chunk at a time, exact lengths (the comparison with the official
tiled decode itself is in tests/engine/test_parity.py)."""

import numpy as np
import pytest
import torch
from diffusers import LTX2Pipeline

from ltx_runtime.colour import rgb_to_yuv420p
from ltx_runtime.decode import (
    LARGER_TILES,
    DecodeTiles,
    audio_waveform,
    decode_long_side,
    decode_video_chunks,
    spatial_tile_size,
    temporal_tiles,
    tiling,
    to_uint8_frames,
    video_frames,
)
from ltx_runtime.geometry import plan_generation, undecodable_size


@pytest.fixture(scope="module")
def pipeline(tiny_weights):
    return LTX2Pipeline.from_pretrained(tiny_weights, dtype=torch.float32, local_files_only=True)


@pytest.mark.parametrize("latent_frames", [1, 2, 3, 5, 20, 64])
@pytest.mark.parametrize("tile_frames, overlap_frames", [(16, 8), (24, 12), (64, 24), (80, 24)])
def test_tiles_cover_every_frame_once(latent_frames, tile_frames, overlap_frames):
    tiles = temporal_tiles(latent_frames, tile_frames=tile_frames, overlap_frames=overlap_frames, compression=8)
    assert sum(tile.keep for tile in tiles) == (latent_frames - 1) * 8 + 1
    assert tiles[0].latent_start == 0 and tiles[-1].latent_end == latent_frames
    for previous, tile in zip(tiles, tiles[1:]):
        # the blended frames are the previous tile's last ones
        assert (previous.latent_end - 1) * 8 + 1 - tile.latent_start * 8 == tile.blend


@pytest.mark.parametrize(
    "latent_frames, tile_frames, overlap_frames, layout",
    [(24, 80, 24, [(0, 10), (6, 17), (13, 24)]), (16, 64, 24, [(0, 8), (4, 13), (9, 16)]), (10, 80, 24, [(0, 10)])],
)  # fmt: skip
def test_tiles_are_ltx_cores(latent_frames, tile_frames, overlap_frames, layout):
    """ltx-core's causal split (1.0.0 `split_temporal_latents`, v1.2.0 `split_temporal_causal`), worked out by hand:
    tiles of tile_frames / 8 latents overlapping by overlap_frames / 8, every later one starting one latent early."""
    tiles = temporal_tiles(latent_frames, tile_frames=tile_frames, overlap_frames=overlap_frames, compression=8)
    assert [(tile.latent_start, tile.latent_end) for tile in tiles] == layout
    assert [tile.blend for tile in tiles] == [0] + [overlap_frames + 1] * (len(layout) - 1)


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
    with tiling(vae, 1088, 1920):
        assert vae.use_tiling and not vae.use_framewise_decoding
        assert (vae.tile_sample_min_height, vae.tile_sample_min_width) == (448, 768)
        assert (vae.tile_sample_stride_height, vae.tile_sample_stride_width) == (384, 704)  # 64 px overlap
    assert not vae.use_tiling


def test_larger_tiles_decode_whole_frames_in_longer_temporal_tiles_for_the_decode_only(pipeline):
    """The `vae_tiles` lever's tiles: no spatial tiling, 160-frame temporal tiles overlapping by the official 24;
    afterwards the VAE has its own temporal tiles again (speed.py's) and no spatial tiling."""
    vae = pipeline.vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = 80, 56
    latents = torch.randn(1, vae.config.latent_channels, 24, 2, 3, generator=torch.Generator().manual_seed(3))
    with tiling(vae, 64, 96, LARGER_TILES[0]), torch.inference_mode():
        assert not vae.use_tiling and (vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames) == (160, 136)
        chunks = list(decode_video_chunks(vae, latents))
    assert [chunk.shape[2] for chunk in chunks] == [128, 57]  # tiles [0, 20), [16, 24); 80-frame ones make three
    assert (vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames) == (80, 56) and not vae.use_tiling
    assert str(LARGER_TILES[0]) == "whole frames, 160-frame temporal tiles" and str(DecodeTiles(768)) == "768 px tiles"


@pytest.mark.parametrize(
    "width, height",
    [(1024, 64), (64, 1024), (832, 64), (1024, 128), (128, 896), (1024, 256), (512, 64), (128, 832), (1920, 1088)],
)  # fmt: skip
def test_undecodable_sizes_are_the_ones_the_tiled_vae_decode_fails_on(pipeline, width, height):
    """Issue 27: 1024x64 was accepted and failed in the VAE decode (a 1-latent strip of the tiled decode meets the
    decoder's reflection padding). The validators refuse what `undecodable_size` names; the real decoder agrees."""
    latents = torch.zeros(1, pipeline.vae.config.latent_channels, 1, height // 32, width // 32)
    with tiling(pipeline.vae, height, width), torch.inference_mode():
        try:
            pipeline.vae.decode(latents, return_dict=False)
            decoded = True
        except RuntimeError as error:
            assert "Padding size should be less than" in str(error)
            decoded = False
    assert decoded == (undecodable_size(width, height) is None)


def test_frugal_tiles_are_half_size_unless_those_cannot_decode(pipeline):
    """Found with issue 27: the frugal retry after an out-of-memory decoded 2560x1440 (generated 2560x1472) with half
    tiles, which leave a one-latent strip: the retry would have failed on the padding instead of decoding."""
    assert decode_long_side(1088, 1920, frugal=True) == 384 and decode_long_side(1088, 1920, frugal=False) == 768
    assert decode_long_side(1472, 2560, frugal=True) == 768
    latents = torch.zeros(1, pipeline.vae.config.latent_channels, 1, 1472 // 32, 2560 // 32)
    frugal = DecodeTiles(decode_long_side(1472, 2560, frugal=True))
    with tiling(pipeline.vae, 1472, 2560, frugal), torch.inference_mode():
        assert pipeline.vae.decode(latents, return_dict=False)[0].shape[-2:] == (1472, 2560)


def test_every_tile_lands_on_its_own_frames(pipeline):
    """Past the seams, the streamed decode of a clip of three temporal tiles is the untiled decode of the whole clip
    (the tiny decoder looks only a few latent frames around each one): no frame is lost, duplicated or shifted. Until
    #26 every later tile dropped its last frame instead of its first (diffusers' `_temporal_tiled_decode` does): one
    frame late from frame 57 on, differing by about the frame-to-frame change (1.7 here)."""
    vae = pipeline.vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = 80, 56
    latents = torch.randn(1, vae.config.latent_channels, 24, 2, 3, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        vae.use_framewise_decoding = False
        whole = vae.decode(latents, return_dict=False)[0]
        chunks = list(decode_video_chunks(vae, latents))
    assert [chunk.shape[2] for chunk in chunks] == [48, 56, 81]  # tiles [0, 10), [6, 17), [13, 24) of latents
    streamed = torch.cat(chunks, dim=2)
    assert streamed.shape == whole.shape == (1, 3, 185, 64, 96)
    torch.testing.assert_close(streamed[:, :, :20], whole[:, :, :20], rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed[:, :, -30:], whole[:, :, -30:], rtol=0, atol=1e-3)


def test_video_frames_are_cropped_trimmed_uint8(pipeline):
    plan = plan_generation(200, 104, 1, 17, 24000)  # generates 256x128, 17 frames; keeps 200x104, 17 frames
    latents = torch.randn(1, 8, plan.latent_frames, plan.gen_height // 32, plan.gen_width // 32)
    chunks = [chunk.rgb for chunk in video_frames(pipeline.vae, latents, plan)]
    assert all(chunk.dtype == np.uint8 and chunk.shape[1:] == (104, 200, 3) for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == 17

    plan = plan_generation(200, 104, 1, 10, 24000)  # 10 frames wanted out of 17 generated
    assert sum(len(chunk) for chunk in video_frames(pipeline.vae, latents, plan)) == 10


def test_video_frames_in_yuv420p_are_the_rgb_frames_converted(pipeline):
    """The gpu_colour path: yuv420p made on the decode's device from the same levels as the RGB frames, RGB only
    when asked for as well (the content check)."""
    plan = plan_generation(200, 104, 1, 17, 24000)
    latents = torch.randn(1, 8, plan.latent_frames, plan.gen_height // 32, plan.gen_width // 32)
    both = list(video_frames(pipeline.vae, latents, plan, rgb=True, yuv420p=True))
    for chunk in both:
        assert chunk.yuv420p.dtype == np.uint8 and chunk.yuv420p.shape == (len(chunk.rgb), 200 * 104 * 3 // 2)
        converted = rgb_to_yuv420p(torch.from_numpy(chunk.rgb).permute(3, 0, 1, 2)).numpy()
        assert np.array_equal(chunk.yuv420p, converted)
    only = list(video_frames(pipeline.vae, latents, plan, rgb=False, yuv420p=True))
    assert all(chunk.rgb is None for chunk in only) and sum(len(chunk) for chunk in only) == 17
    assert all(np.array_equal(a.yuv420p, b.yuv420p) for a, b in zip(both, only))


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
