"""Shape arithmetic for every allowed (model, size, duration, fps), and the real crop/trim code on every one of them.

No generation is needed: the decoder's chunks are stood in for by zero-stride tensors of the real shapes, so even
10 s of 4K at 50 fps costs no memory.
"""

import itertools

import pytest
import torch

from ltx_runtime.catalog import get_model, hosted_models
from ltx_runtime.decode import temporal_tiles
from ltx_runtime.geometry import crop_frames, frames_for_vae, plan_generation, trim_frames

RANGE_SAMPLE = (((256, 256), (1280, 720), (1920, 1080), (3840, 2160), (1080, 1920)), (1, 5, 20), (8, 24, 25, 50))
"""For a model that takes any size, duration and fps in ranges (lightricks:ltx@2): the ends and the common values."""
COMBINATIONS = [
    (spec, width, height, duration, fps)
    for spec in hosted_models()
    for (width, height), duration, fps in itertools.product(
        *((spec.sizes, spec.durations, spec.fps_values) if isinstance(spec.sizes, tuple) else RANGE_SAMPLE)
    )
]
# diffusers' default temporal tiles for the LTX-2 video VAE, in output frames
TILE_FRAMES, TILE_OVERLAP = 16, 8


def decoder_chunks(plan):
    """Chunks shaped as decode.decode_video_chunks yields them for this plan (values irrelevant)."""
    tiles = temporal_tiles(plan.latent_frames, TILE_FRAMES, TILE_OVERLAP, compression=8)
    base = torch.zeros(1, 3, 1, 1, 1)
    return [base.expand(1, 3, tile.keep, plan.gen_height, plan.gen_width) for tile in tiles]


def test_every_hosted_combination_is_covered():
    # Fast and Pro: 3 sizes x 3 durations x 2 fps; LTX-2.3 and its Fast: 6 sizes x 3 durations x 4 fps; LTX-2: a sample;
    # LTX-2.5 Fast and Pro: 8 and 4 sizes x 12 durations x 4 and 3 fps
    assert len(COMBINATIONS) == 18 + 18 + 72 + 72 + 5 * 3 * 4 + 384 + 144


@pytest.mark.parametrize(
    "spec, width, height, duration, fps", COMBINATIONS, ids=lambda v: getattr(v, "id", str(v))
)
def test_plan_rounds_up_minimally_and_crop_trim_give_exactly_the_request(spec, width, height, duration, fps):
    plan = plan_generation(width, height, duration, fps, spec.audio_sample_rate)

    assert plan.frames == duration * fps
    assert plan.audio_samples == duration * spec.audio_sample_rate
    for asked, generated in ((width, plan.gen_width), (height, plan.gen_height)):
        assert generated % 64 == 0 and asked <= generated < asked + 64
    assert (plan.gen_frames - 1) % 8 == 0 and plan.frames <= plan.gen_frames < plan.frames + 8
    assert plan.stage1_width * 2 == plan.gen_width and plan.stage1_width % 32 == 0
    assert plan.stage1_height * 2 == plan.gen_height and plan.stage1_height % 32 == 0
    assert plan.latent_frames == (plan.gen_frames - 1) // 8 + 1
    # Audio is generated for gen_frames / fps seconds (the pipeline's own rounding); after the causal audio VAE
    # drops 3 mel frames it covers the request, or falls short by at most those 30 ms (8 s at 50 fps only), which
    # decode.audio_waveform pads with silence.
    audio_latents = round(plan.gen_frames / fps * 25)
    assert (audio_latents * 4 - 3) * 0.01 >= duration - 0.03 - 1e-9

    chunks = decoder_chunks(plan)
    assert sum(chunk.shape[2] for chunk in chunks) == plan.gen_frames
    kept = list(trim_frames((crop_frames(chunk, plan) for chunk in chunks), plan.frames, frame_axis=2))
    assert sum(chunk.shape[2] for chunk in kept) == plan.frames
    assert all(chunk.shape[-2:] == (height, width) for chunk in kept)
    assert 0 <= plan.crop_top and plan.crop_top + height <= plan.gen_height
    assert 0 <= plan.crop_left and plan.crop_left + width <= plan.gen_width


@pytest.mark.parametrize(
    "width, height, gen_width, gen_height, tokens_per_latent_frame",
    [(1920, 1080, 1920, 1088, 2040), (1080, 1920, 1088, 1920, 2040), (2560, 1440, 2560, 1472, 3680), (3840, 2160, 3840, 2176, 8160)],
)
def test_generation_sizes_from_the_model_notes(width, height, gen_width, gen_height, tokens_per_latent_frame):
    plan = plan_generation(width, height, 6, 25, 24000)
    assert (plan.gen_width, plan.gen_height) == (gen_width, gen_height)
    assert plan.stage2_tokens == tokens_per_latent_frame * plan.latent_frames


@pytest.mark.parametrize(
    "duration, fps, gen_frames, latent_frames",
    [(6, 25, 153, 20), (8, 25, 201, 26), (10, 25, 257, 33), (6, 50, 305, 39), (8, 50, 401, 51), (10, 50, 505, 64),
     (6, 24, 145, 19), (8, 24, 193, 25), (10, 24, 241, 31), (6, 48, 289, 37), (8, 48, 385, 49), (10, 48, 481, 61)],
)
def test_frame_counts_from_the_model_notes(duration, fps, gen_frames, latent_frames):
    plan = plan_generation(1920, 1080, duration, fps, 24000)
    assert (plan.gen_frames, plan.latent_frames) == (gen_frames, latent_frames)


def test_1080p_is_cropped_centred():
    plan = plan_generation(1920, 1080, 6, 25, 24000)
    assert (plan.crop_left, plan.crop_top) == (0, 4)
    frames = torch.arange(1088).view(1, 1, 1, 1088, 1).expand(1, 3, 2, 1088, 1920)
    cropped = crop_frames(frames, plan)
    assert cropped[0, 0, 0, 0, 0] == 4 and cropped[0, 0, 0, -1, 0] == 1083


def test_frames_for_vae():
    assert [frames_for_vae(n) for n in (1, 2, 8, 9, 10, 17, 150)] == [1, 9, 9, 9, 17, 17, 153]


def test_tiny_model_sizes_round_up_too():
    tiny = get_model("ltx-runtime:tiny@1")
    plan = plan_generation(200, 104, 1, 17, tiny.audio_sample_rate)
    assert (plan.gen_width, plan.gen_height, plan.gen_frames) == (256, 128, 17)
    assert (plan.crop_left, plan.crop_top) == (28, 12)


def test_fractional_frame_counts_are_refused():
    with pytest.raises(ValueError, match="whole number of frames"):
        plan_generation(1920, 1080, 6.5, 25, 24000)


def test_trim_fails_loudly_when_the_decoder_comes_up_short():
    chunks = [torch.zeros(1, 3, 4, 8, 8)]
    with pytest.raises(RuntimeError, match="produced 4 frames, 5 were needed"):
        list(trim_frames(chunks, 5, frame_axis=2))
