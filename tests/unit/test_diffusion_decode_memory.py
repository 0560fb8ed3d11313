"""The memory estimate and admission with LTX-2.5's diffusion video decoder (admission.py: its decode holds the whole
clip and a large tile's working set; tests/engine/test_memory_trace.py keeps the constants within 10 % above traced
peaks). Torch-free, as an API node is."""

from __future__ import annotations

import pytest

from ltx_runtime.admission import (
    DIFFUSION_DECODE,
    GIB,
    MemoryLimitError,
    MemoryProfile,
    check_memory,
    choose_tiles,
    diffusion_decode_bytes,
    estimate,
)
from ltx_runtime.catalog import DIFFUSION_DECODER_PARAMETERS, get_model
from ltx_runtime.geometry import LARGER_TILES, plan_generation
from ltx_runtime.memory import budget_for

FAST, PRO = get_model("lightricks:ltx@2.5-fast"), get_model("lightricks:ltx@2.5-pro")
CARDS = {"24 GB": budget_for(int(23.6 * GIB), None), "48 GB": budget_for(int(44.5 * GIB), None),
         "80 GB": budget_for(int(79.1 * GIB), None)}  # fmt: skip


def plan(width: int, height: int, seconds: int, fps: int):
    return plan_generation(width, height, seconds, fps, 48000)


def test_the_decoding_phase_is_the_diffusion_decoders_for_2_5_only():
    """LTX-2.5 with the diffusion decoder: its weights beside the conv VAE in every phase, and its own decode; LTX-2.3
    (the conv VAE only) is not touched by the setting."""
    clip = plan(1920, 1080, 8, 25)
    conv = estimate(FAST, clip, MemoryProfile.RESIDENT)
    diffusion = estimate(FAST, clip, MemoryProfile.RESIDENT, video_decoder="diffusion")
    assert diffusion.diffusion_decoder and not conv.diffusion_decoder
    decoder_weights = DIFFUSION_DECODER_PARAMETERS * 2
    assert diffusion.encoding - conv.encoding == diffusion.denoising - conv.denoising == decoder_weights
    assert diffusion.decoding - diffusion.encoding == diffusion_decode_bytes(clip)
    assert diffusion.decoding - conv.decoding > 10 * GIB  # 20 GiB against the conv VAE's 4.8 at 1080p 8 s
    ltx23 = get_model("lightricks:ltx@2.3")
    conv_only = estimate(ltx23, clip, MemoryProfile.FP8)
    assert estimate(ltx23, clip, MemoryProfile.FP8, video_decoder="diffusion") == conv_only


def test_the_diffusion_decode_is_a_bounded_tile_plus_the_whole_clip():
    """Past one tile (768 x 768 px, 80 frames) only the clip's share grows: linearly in pixels x frames; past about
    2 G pixel-frames joining the tiles into the clip is the peak."""
    short, long = plan(1920, 1080, 10, 25), plan(1920, 1080, 20, 25)
    pixels = long.gen_width * long.gen_height
    grown = diffusion_decode_bytes(long) - diffusion_decode_bytes(short)
    assert grown == pixels * (long.gen_frames - short.gen_frames) * DIFFUSION_DECODE.per_clip_pixel_frame
    tile = diffusion_decode_bytes(short) - pixels * short.gen_frames * DIFFUSION_DECODE.per_clip_pixel_frame
    assert tile == 768 * 768 * (80 * DIFFUSION_DECODE.per_tile_pixel_frame + DIFFUSION_DECODE.per_tile_pixel)
    longest = plan(3840, 2160, 20, 50)
    joined = longest.gen_width * longest.gen_height * longest.gen_frames * DIFFUSION_DECODE.joined_pixel_frame
    assert diffusion_decode_bytes(longest) == joined > tile + joined * 17 // 25
    small = plan(1280, 720, 2, 25)  # generated as 1280x768, 57 frames: the tile is 768 x 768 x 57
    small_tile = diffusion_decode_bytes(small) - 1280 * 768 * 57 * DIFFUSION_DECODE.per_clip_pixel_frame
    assert small_tile == 768 * 768 * (57 * DIFFUSION_DECODE.per_tile_pixel_frame + DIFFUSION_DECODE.per_tile_pixel)


def test_the_vae_tiles_lever_leaves_the_diffusion_decoder_alone():
    estimate_, why = choose_tiles(FAST, plan(1920, 1080, 2, 25), MemoryProfile.RESIDENT, 200 * GIB,
                                  video_decoder="diffusion")  # fmt: skip
    assert estimate_.tiles not in LARGER_TILES and "diffusion decoder" in why
    assert choose_tiles(FAST, plan(1920, 1080, 2, 25), MemoryProfile.RESIDENT, 200 * GIB)[0].tiles in LARGER_TILES


@pytest.mark.parametrize(
    "spec, card, profile, clip, advice",
    [
        # 1080p 8 s on a 24 GB card: the diffusion decode (20 GiB) does not fit beside the weights, the conv one does
        (FAST, "24 GB", MemoryProfile.LOW, (1920, 1080, 8, 25), "(LTX_VIDEO_DECODER=conv), which fits"),
        (PRO, "24 GB", MemoryProfile.LOW, (1920, 1080, 8, 25), "(LTX_VIDEO_DECODER=conv), which fits"),
        # 4K 8 s on a 48 GB card: with the conv VAE, and then only with the low profile
        (FAST, "48 GB", MemoryProfile.FP8, (3840, 2160, 8, 25),
         "(LTX_VIDEO_DECODER=conv and LTX_MEMORY_PROFILE=low), which fits"),
        # 4K 8 s on an 80 GB card in bf16: the fp8 profile fits with the diffusion decoder itself
        (FAST, "80 GB", MemoryProfile.RESIDENT, (3840, 2160, 8, 25), "(LTX_MEMORY_PROFILE=fp8), which fits"),
    ],
)  # fmt: skip
def test_a_refusal_names_what_would_fit(spec, card, profile, clip, advice):
    budget = CARDS[card]
    with pytest.raises(MemoryLimitError) as refused:
        check_memory(spec, plan(*clip), profile, budget, video_decoder="diffusion")
    message = str(refused.value)
    assert f"with the '{profile.value}' memory profile and the diffusion video decoder" in message
    assert message.endswith(advice)
    if "LTX_VIDEO_DECODER=conv" in advice:
        fitting = MemoryProfile.LOW if "LTX_MEMORY_PROFILE=low" in advice else profile
        assert check_memory(spec, plan(*clip), fitting, budget, video_decoder="conv").peak <= budget
        with pytest.raises(MemoryLimitError):
            check_memory(spec, plan(*clip), MemoryProfile.LOW, budget, video_decoder="diffusion")


def test_a_refusal_with_nothing_that_fits_names_neither_setting():
    """20 s of 4K at 50 fps fits no profile of an 80 GB card with either decoder."""
    with pytest.raises(MemoryLimitError) as refused:
        check_memory(FAST, plan(3840, 2160, 20, 50), MemoryProfile.RESIDENT, CARDS["80 GB"], video_decoder="diffusion")
    assert "LTX_" not in str(refused.value)
