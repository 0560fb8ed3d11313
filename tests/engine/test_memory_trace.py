"""The memory estimate against the working memory of the real full-size modules, traced on the meta device
(ltx_runtime/memory_trace.py): each recipe's widest denoising pass, text-to-video and image-to-video, and the
streamed VAE decode, at 1080p and 4K, and LTX-2.5's diffusion decode at sizes that trace in seconds. The estimate must
cover the trace, and by no more than 10 % (a plan that over-reserves refuses clips that fit)."""

from __future__ import annotations

from functools import lru_cache

import pytest

from ltx_runtime import memory_trace
from ltx_runtime.catalog import get_model
from ltx_runtime.admission import MemoryLimitError, check_memory
from ltx_runtime.geometry import LARGER_TILES, OFFICIAL_TILES, DecodeTiles
from ltx_runtime.geometry import plan_generation
from ltx_runtime.admission import DIFFUSION_DECODE, DIFFUSION_DECODE_TILE, GIB, MemoryProfile, estimate
from ltx_runtime.catalog import DIFFUSION_DECODER_PARAMETERS
from ltx_runtime.memory import host_memory

RECIPES = ("lightricks:2@1", "lightricks:2@0", "lightricks:ltx@2.3", "lightricks:ltx@2.5-fast")  # Fast, Pro, 2.3, 2.5
SIZES = {"1080p": (1920, 1080), "4K": (3840, 2160)}
MARGIN = 1.10


@lru_cache(maxsize=None)
def traced_denoising(architecture: str, size: str, image_to_video: bool) -> int:
    return memory_trace.denoising_peak(architecture, plan(size), image_to_video)


@lru_cache(maxsize=None)
def traced_decode(architecture: str, size: str, tiles: DecodeTiles = OFFICIAL_TILES) -> int:
    return memory_trace.decode_peak(architecture, plan(size), tiles)


def plan(size: str):
    return plan_generation(*SIZES[size], 8, 25, 48000)


def estimated(model: str, size: str, image_to_video: bool, tiles: DecodeTiles = OFFICIAL_TILES) -> tuple[int, int]:
    """(denoising, decoding) working memory of the estimate: each phase's bytes beyond the weights."""
    needed = estimate(get_model(model), plan(size), MemoryProfile.RESIDENT, image_to_video=image_to_video, tiles=tiles)
    assert needed.tokens == plan(size).stage2_tokens  # stage 2 is every recipe's widest pass
    return needed.denoising - needed.encoding, needed.decoding - needed.encoding


def check(estimate_bytes: int, traced_bytes: int) -> None:
    assert traced_bytes <= estimate_bytes <= MARGIN * traced_bytes, (estimate_bytes / GIB, traced_bytes / GIB)


def test_image_to_video_denoising_at_1080p_is_covered():
    """The quick case: LTX-2 Fast from a first frame, 1080p 8 s (per-token timesteps: 2.3x text-to-video's)."""
    spec = get_model("lightricks:2@1")
    check(estimated(spec.id, "1080p", True)[0], traced_denoising(spec.architecture, "1080p", True))


@pytest.mark.slow
@pytest.mark.parametrize("image_to_video", [False, True], ids=["text", "image"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("model", RECIPES)
def test_the_denoising_estimate_covers_the_traced_pass(model, size, image_to_video):
    architecture = get_model(model).architecture
    check(estimated(model, size, image_to_video)[0], traced_denoising(architecture, size, image_to_video))


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("model", RECIPES)
def test_the_decode_estimate_covers_the_traced_decode(model, size):
    architecture = get_model(model).architecture
    check(estimated(model, size, False)[1], traced_decode(architecture, size))


@pytest.mark.parametrize("tiles", LARGER_TILES, ids=str)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("model", ("lightricks:2@1", "lightricks:ltx@2.3", "lightricks:ltx@2.5-fast"))
def test_the_decode_estimate_follows_the_larger_tiles(model, size, tiles):
    """The whole-frame decodes the `vae_tiles` lever may plan (quick to trace: no spatial tiles to loop over)."""
    check(estimated(model, size, False, tiles)[1], traced_decode(get_model(model).architecture, size, tiles))


DIFFUSION_CLIPS = {"768x768 3 s": (768, 768, 3), "768x768 4 s": (768, 768, 4), "1080p 1 s": (1920, 1080, 1),
                   "1080p 2 s": (1920, 1080, 2), "4K 20 s": (3840, 2160, 20)}  # fmt: skip
"""At 25 fps: one whole tile (768 x 768 x 80) and a shorter second one, the same at 105 frames, 1080p in six
spatial tiles of 25 and 57 frames, and 4K 20 s, whose peak is the joining of its 216 tiles (5-15 minutes to trace)."""


def diffusion_plan(clip: str):
    return plan_generation(*DIFFUSION_CLIPS[clip], 25, 48000)


@lru_cache(maxsize=None)
def traced_diffusion_decode(clip: str) -> int:
    return memory_trace.diffusion_decode_peak(diffusion_plan(clip))


def estimated_diffusion_decode(clip: str) -> int:
    needed = estimate(get_model("lightricks:ltx@2.5-fast"), diffusion_plan(clip), MemoryProfile.RESIDENT,
                      video_decoder="diffusion")  # fmt: skip
    return needed.decoding - needed.encoding


def test_the_diffusion_decoder_traced_is_the_one_admission_counts():
    decoder = memory_trace._diffusion_decoder()
    assert sum(parameter.numel() for parameter in decoder.parameters()) == DIFFUSION_DECODER_PARAMETERS
    tile = (decoder.tile_sample_min_width, decoder.tile_sample_min_height, decoder.tile_sample_min_num_frames)
    assert decoder.use_tiling and tile == DIFFUSION_DECODE_TILE


def test_the_diffusion_decode_estimate_covers_a_whole_tile():
    check(estimated_diffusion_decode("768x768 3 s"), traced_diffusion_decode("768x768 3 s"))


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["768x768 4 s", "1080p 1 s", "1080p 2 s",
                                  pytest.param("4K 20 s", marks=pytest.mark.trace_long)])  # fmt: skip
def test_the_diffusion_decode_estimate_covers_the_traced_decode(clip):
    check(estimated_diffusion_decode(clip), traced_diffusion_decode(clip))


@pytest.mark.slow
def test_past_a_tile_the_diffusion_decode_grows_by_the_clip_share_only():
    """A longer clip in tiles of the same size: the tile's working set stays, the trace grows by no more than the
    estimate's share per pixel and frame of the clip."""
    short, long = diffusion_plan("768x768 3 s"), diffusion_plan("768x768 4 s")
    grown = traced_diffusion_decode("768x768 4 s") - traced_diffusion_decode("768x768 3 s")
    added = 768 * 768 * (long.gen_frames - short.gen_frames)
    assert 0 < grown <= added * DIFFUSION_DECODE.per_clip_pixel_frame


def test_image_to_video_plans_the_frugal_mode_on_an_80_gb_card():
    """1080p 8 s fits an 80 GB card resident from text, not from a first frame: the plan goes frugal from the start
    instead of running out of memory in stage 2 and rerunning the whole clip."""
    spec = get_model("lightricks:2@1")
    clip = plan("1080p")
    budget = int(79.1 * GIB * 0.92)
    assert not check_memory(spec, clip, MemoryProfile.RESIDENT, budget).frugal
    assert check_memory(spec, clip, MemoryProfile.RESIDENT, budget, image_to_video=True).frugal


def test_image_to_video_that_cannot_fit_a_24_gb_card_is_refused():
    spec = get_model("lightricks:2@1")
    clip = plan("1080p")
    budget = int(23.6 * GIB * 0.92)
    assert check_memory(spec, clip, MemoryProfile.LOW, budget).peak <= budget
    with pytest.raises(MemoryLimitError, match="GiB of GPU memory"):
        check_memory(spec, clip, MemoryProfile.LOW, budget, image_to_video=True)


def test_host_memory_per_profile():
    """Loading reads every component into host memory first; afterwards the streamed modules stay there."""
    spec = get_model("lightricks:2@1")
    loading = {profile: host_memory(spec, profile).loading / GIB for profile in MemoryProfile}
    serving = {profile: host_memory(spec, profile).serving / GIB for profile in MemoryProfile}
    assert set(round(value) for value in loading.values()) == {64}
    assert round(serving[MemoryProfile.RESIDENT]) == 0
    assert round(serving[MemoryProfile.FP8]) == 23  # Gemma 3 12B in bf16
    assert round(serving[MemoryProfile.LOW]) == 40  # and the transformer in fp8
