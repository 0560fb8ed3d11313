"""Memory profiles, the memory estimate, admission control and the out-of-memory fallback.

The profiles run for real on the CPU with tiny weights (fp8 storage and group offloading work there too, just without
streams); the GPU budget is a setting here, the way an operator caps it. Out-of-memory is injected into the decode
stage, the stage that runs out at 1080p and above in the field (ltx2-models.md section 5)."""

from __future__ import annotations

import pytest
import torch
from conftest import probe

from ltx_runtime import decode
from ltx_runtime.catalog import MODELS, get_model
from ltx_runtime.admission import MemoryLimitError, check_memory
from ltx_runtime.engine import Engine, OutOfMemory
from ltx_runtime.request import GenerationRequest
from ltx_runtime.geometry import plan_generation
from ltx_runtime.admission import GIB, MemoryProfile, choose_profile, choose_tiles, estimate, frame_image_load
from ltx_runtime.geometry import LARGER_TILES, OFFICIAL_TILES
from ltx_runtime.memory import budget_for

HOSTED = [spec for spec in MODELS.values() if not spec.demo_only]


def tiny_request(**overrides) -> GenerationRequest:
    fields = dict(model="ltx-runtime:tiny@1", prompt="a cat at night", width=256, height=128, duration=2, fps=25,
                  audio=True, seed=3)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


@pytest.mark.parametrize(
    "gpu_gib, profile",
    [(139.8, MemoryProfile.RESIDENT), (79.1, MemoryProfile.RESIDENT), (44.5, MemoryProfile.FP8), (23.6, MemoryProfile.LOW)],
)
def test_the_profile_follows_the_gpus_memory(gpu_gib, profile):
    assert choose_profile(get_model("lightricks:2@1"), budget_for(int(gpu_gib * GIB), None)) is profile
    assert choose_profile(get_model("lightricks:2@1"), None) is MemoryProfile.RESIDENT  # no budget: the CPU


def test_the_distilled_lora_is_counted_and_the_profile_is_chosen_per_model():
    """The guided recipes hold the distilled LoRA (7.6 GB, bf16) beside the transformer: counted, it puts LTX-2.3
    resident over an 80 GB card's budget even while encoding, so LTX-2.3 runs `fp8` there while LTX-2 Fast and Pro
    stay `resident`; an H200 keeps all of them resident."""
    h100, h200 = budget_for(int(79.1 * GIB), None), budget_for(int(139.8 * GIB), None)
    clip = plan_generation(1920, 1080, 8, 25, 48000)
    fast, pro, ltx23 = (get_model(model) for model in ("lightricks:2@1", "lightricks:2@0", "lightricks:ltx@2.3"))
    lora = estimate(pro, clip, MemoryProfile.RESIDENT).encoding - estimate(fast, clip, MemoryProfile.RESIDENT).encoding
    assert lora == 7_670_000_000  # resident and fp8: all of it on the GPU, in bf16
    assert estimate(pro, clip, MemoryProfile.FP8).encoding - estimate(fast, clip, MemoryProfile.FP8).encoding == lora
    assert estimate(ltx23, clip, MemoryProfile.RESIDENT).encoding > h100
    profiles = {spec.id: choose_profile(spec, h100) for spec in (fast, pro, ltx23)}
    assert profiles == {fast.id: MemoryProfile.RESIDENT, pro.id: MemoryProfile.RESIDENT, ltx23.id: MemoryProfile.FP8}
    assert all(choose_profile(spec, h200) is MemoryProfile.RESIDENT for spec in HOSTED)
    with pytest.raises(MemoryLimitError, match="LTX_MEMORY_PROFILE=fp8"):  # forced resident: refused, naming fp8
        check_memory(ltx23, clip, MemoryProfile.RESIDENT, h100)
    check_memory(ltx23, clip, choose_profile(ltx23, h100), h100)


def test_an_engine_picks_the_profile_per_model(tiny_root):
    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, memory_budget_gib=79.1 * 0.92)
    assert engine.memory_profile is None
    assert engine.profile_for("lightricks:2@1") is MemoryProfile.RESIDENT
    assert engine.profile_for("lightricks:ltx@2.3") is MemoryProfile.FP8
    forced = Engine("tiny", tiny_folder=tiny_root, lock={}, memory_profile=MemoryProfile.LOW, memory_budget_gib=79.1)
    assert forced.profile_for("lightricks:2@1") is forced.profile_for("lightricks:ltx@2.3") is MemoryProfile.LOW


@pytest.mark.parametrize(
    "model, gpu_gib, size, profile, tiles",
    [
        # An H200: whole frames in 160-frame tiles at 1080p (26 GiB of decode beside 64 GiB of weights) ...
        ("lightricks:2@1", 139.8, (1920, 1080), MemoryProfile.RESIDENT, LARGER_TILES[0]),
        # ... in 80-frame tiles at 4K (61 GiB: 160-frame tiles would need 101) ...
        ("lightricks:2@1", 139.8, (3840, 2160), MemoryProfile.RESIDENT, LARGER_TILES[1]),
        # ... but not for LTX-2 Pro at 4K, whose distilled LoRA leaves too little room: the official tiles.
        ("lightricks:2@0", 139.8, (3840, 2160), MemoryProfile.RESIDENT, OFFICIAL_TILES),
        # An 80 GB card resident: 64 GiB of weights leave no room for whole frames at 1080p.
        ("lightricks:2@1", 79.1, (1920, 1080), MemoryProfile.RESIDENT, OFFICIAL_TILES),
        # The same card with fp8 weights (LTX-2.3's profile there) has room again.
        ("lightricks:ltx@2.3", 79.1, (1920, 1080), MemoryProfile.FP8, LARGER_TILES[0]),
        # A 24 GB card: the official tiles.
        ("lightricks:2@1", 23.6, (1920, 1080), MemoryProfile.LOW, OFFICIAL_TILES),
    ],
)  # fmt: skip
def test_larger_vae_tiles_are_chosen_where_the_card_has_room(model, gpu_gib, size, profile, tiles):
    spec, budget = get_model(model), budget_for(int(gpu_gib * GIB), None)
    clip = plan_generation(*size, 8, 25, spec.audio_sample_rate)
    planned, why = choose_tiles(spec, clip, profile, budget)
    assert planned.tiles == tiles and not planned.frugal and planned.peak <= budget
    official = estimate(spec, clip, profile, budget)
    # the estimate follows the tiles: only the decode phase changes
    assert (planned.encoding, planned.denoising) == (official.encoding, official.denoising)
    assert (planned.decoding > official.decoding) == (tiles != OFFICIAL_TILES)
    assert why.startswith(str(tiles) if tiles != OFFICIAL_TILES else "the official tiles")
    assert ("over the" in why) == (tiles == OFFICIAL_TILES)


def test_larger_tiles_are_never_planned_without_a_budget_or_for_a_frugal_clip():
    spec = get_model("lightricks:2@1")
    clip = plan_generation(3840, 2160, 10, 50, spec.audio_sample_rate)
    assert choose_tiles(spec, clip, MemoryProfile.RESIDENT, None)[0].tiles == OFFICIAL_TILES
    planned, why = choose_tiles(spec, clip, MemoryProfile.RESIDENT, int(110 * GIB))
    assert planned.frugal and planned.tiles == OFFICIAL_TILES and "frugal" in why


def test_the_budget_is_most_of_the_gpu_or_the_setting():
    assert budget_for(None, None) is None  # the CPU: no limit
    assert budget_for(80 * GIB, None) == int(80 * GIB * 0.92)
    assert budget_for(80 * GIB, 24) == 24 * GIB


@pytest.mark.parametrize("spec", HOSTED, ids=lambda spec: spec.id)
def test_estimates_grow_with_the_clip_and_shrink_with_the_profile(spec):
    small = plan_generation(1920, 1080, 6, spec.default_fps, spec.audio_sample_rate)
    large = plan_generation(3840, 2160, 10, 50, spec.audio_sample_rate)
    for profile in MemoryProfile:
        assert estimate(spec, large, profile).peak > estimate(spec, small, profile).peak
    peaks = [estimate(spec, large, profile).peak for profile in (MemoryProfile.RESIDENT, MemoryProfile.FP8, MemoryProfile.LOW)]
    assert peaks == sorted(peaks, reverse=True)
    # 1080p, 6 s: stage 2 sees 6 s at 25 fps -> 153 frames -> 20 latent frames of 34 x 60 tokens.
    if spec.default_fps == 25:
        assert estimate(spec, small, MemoryProfile.RESIDENT).tokens == 20 * 34 * 60


def test_each_appended_keyframe_adds_a_latent_frame_of_tokens():
    """Keyframes past the first frame are appended as one latent frame of tokens each, at every stage."""
    spec = get_model("lightricks:2@1")
    plan = plan_generation(1920, 1080, 6, 25, spec.audio_sample_rate)  # 20 latent frames of 60 x 34 tokens
    first_frame = estimate(spec, plan, MemoryProfile.RESIDENT, image_to_video=True)
    keyframes = estimate(spec, plan, MemoryProfile.RESIDENT, **frame_image_load([0, "last", 48]))
    assert frame_image_load([0, "last", 48]) == {"image_to_video": True, "appended_frames": 2}
    assert frame_image_load([]) == {"image_to_video": False, "appended_frames": 0}
    assert (first_frame.tokens, keyframes.tokens) == (20 * 60 * 34, 22 * 60 * 34)
    assert keyframes.denoising > first_frame.denoising and keyframes.decoding == first_frame.decoding


def test_the_resident_profile_holds_every_weight_in_bf16():
    spec = get_model("lightricks:2@1")
    plan = plan_generation(1920, 1080, 6, 25, spec.audio_sample_rate)
    resident = estimate(spec, plan, MemoryProfile.RESIDENT)
    # 34.3 B parameters x 2 bytes are on the GPU while the prompt is encoded.
    assert 63 * GIB < resident.encoding < 65 * GIB
    fp8 = estimate(spec, plan, MemoryProfile.FP8)
    assert fp8.encoding < 30 * GIB  # 19 GB of fp8 transformer, 6.5 GB of the rest, the streamed text encoder


def test_a_tight_budget_plans_the_frugal_mode_before_refusing():
    spec = get_model("lightricks:2@1")
    plan = plan_generation(3840, 2160, 10, 50, spec.audio_sample_rate)
    assert not check_memory(spec, plan, MemoryProfile.RESIDENT, int(139.8 * GIB)).frugal
    # On an 80 GB card, resident, a 4K 10 s 50 fps clip fits only with the text encoder and transformer moved out.
    roomy = estimate(spec, plan, MemoryProfile.RESIDENT, int(200 * GIB))
    frugal = estimate(spec, plan, MemoryProfile.RESIDENT, int(110 * GIB))
    assert frugal.frugal and frugal.peak < roomy.peak


def test_a_request_over_the_budget_is_refused_naming_the_limit():
    spec = get_model("lightricks:2@1")
    plan = plan_generation(3840, 2160, 10, 50, spec.audio_sample_rate)
    with pytest.raises(MemoryLimitError) as refused:
        check_memory(spec, plan, MemoryProfile.LOW, 24 * GIB)
    assert refused.value.parameter == "width"
    message = str(refused.value)
    assert "3840x2160" in message and "limit of 24 GiB" in message and "'low' memory profile" in message


def test_the_engine_refuses_before_loading_anything(tiny_root, tmp_path):
    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, memory_profile=MemoryProfile.LOW, memory_budget_gib=24)
    output = tmp_path / "refused.mp4"
    with pytest.raises(MemoryLimitError):
        engine.generate(tiny_request(model="lightricks:2@1", width=3840, height=2160, duration=10, fps=50), output)
    assert not engine._loaded and not output.exists()


@pytest.mark.slow
@pytest.mark.parametrize("profile", [MemoryProfile.FP8, MemoryProfile.LOW])
@pytest.mark.parametrize("model", ["ltx-runtime:tiny@1", "ltx-runtime:tiny-pro@1", "ltx-runtime:tiny-ltx23@1"])
def test_frugal_profiles_store_the_transformer_in_fp8_and_still_render(tiny_root, tmp_path, profile, model):
    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", memory_profile=profile)
    result = engine.generate(tiny_request(model=model), tmp_path / "clip.mp4")
    transformer = engine.load(model).pipeline.transformer
    stored = {parameter.dtype for name, parameter in transformer.named_parameters() if "transformer_blocks" in name}
    assert torch.float8_e4m3fn in stored
    # The distilled LoRA's matrices stay in the compute dtype (peft reads their dtype before any casting hook runs).
    assert {p.dtype for name, p in transformer.named_parameters() if "lora_" in name} <= {torch.float32}
    info = probe(result.path)
    assert (info.width, info.height, info.frames) == (256, 128, 50)
    assert info.audio_rate == get_model(model).audio_sample_rate


def _inject_out_of_memory(monkeypatch, failures: int) -> list[int]:
    """Make the decode stage raise CUDA's out-of-memory error `failures` times; returns the call log."""
    real = decode.video_frames
    calls = []

    def video_frames(*args, **kwargs):
        calls.append(1)
        if len(calls) <= failures:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(decode, "video_frames", video_frames)
    return calls


@pytest.mark.slow
def test_out_of_memory_is_retried_once_more_frugally(engine, tmp_path, monkeypatch):
    calls = _inject_out_of_memory(monkeypatch, failures=1)
    frugal_calls = []
    real_attempt = engine._attempt
    monkeypatch.setattr(engine, "_attempt", lambda **kw: frugal_calls.append(kw["frugal"]) or real_attempt(**kw))
    result = engine.generate(tiny_request(), tmp_path / "retried.mp4")
    assert len(calls) == 2 and frugal_calls == [False, True]
    assert result.timings["retried_frugally"] == 1.0
    info = probe(result.path)
    assert (info.width, info.height, info.frames, info.audio_rate) == (256, 128, 50, 24000)


@pytest.mark.slow
def test_a_second_out_of_memory_fails_the_clip_and_the_engine_carries_on(engine, tmp_path, monkeypatch):
    _inject_out_of_memory(monkeypatch, failures=2)
    output = tmp_path / "failed.mp4"
    with pytest.raises(OutOfMemory, match="out of GPU memory for 256x128"):
        engine.generate(tiny_request(), output)
    assert not output.exists()
    # The next clip renders as usual.
    result = engine.generate(tiny_request(seed=4), tmp_path / "next.mp4")
    assert probe(result.path).frames == 50 and "retried_frugally" not in result.timings
