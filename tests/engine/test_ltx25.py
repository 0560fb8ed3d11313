"""LTX-2.5 Fast and Pro: the catalog facts (shared/docs/ltx25.md), the tiny 2.5 weights against diffusers' own 2.5
classes, the Euler-ancestral step and the 2.5 schedules against formulas written here from Lightricks' ltx-pipelines
1.2.0 (commit 400fd31; nothing of it is imported), the duration head, and clips end to end on tiny weights."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import asking, probe
from ltx_runtime.catalog import Recipe, get_model
from ltx_runtime.geometry import plan_generation
from ltx_runtime.recipes import ancestral, fast, guided
from ltx_runtime.request import GenerationRequest, Keyframe, RequestError, validate_request

FAST, PRO = "lightricks:ltx@2.5-fast", "lightricks:ltx@2.5-pro"
TINY_FAST, TINY_PRO = "ltx-runtime:tiny-ltx25@1", "ltx-runtime:tiny-ltx25-pro@1"
HD, FULL_HD = (1280, 720), (1920, 1080)


# --- catalog -----------------------------------------------------------------------------------------------------


def test_the_2_5_tiers_sizes_rates_and_durations():
    fast_spec, pro = get_model(FAST), get_model(PRO)
    both = lambda sizes: set(sizes) | {(h, w) for w, h in sizes}  # noqa: E731
    assert set(fast_spec.sizes) == both({HD, FULL_HD, (2560, 1440), (3840, 2160)})
    assert set(pro.sizes) == both({HD, FULL_HD})
    assert fast_spec.fps_values == (24, 25, 48, 50) and pro.fps_values == (24, 25, 50)
    for spec in (fast_spec, pro):
        assert spec.durations == (2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20)
        assert spec.picks_duration and spec.default_fps == 25 and spec.default_size == FULL_HD
        assert spec.audio_flag == ("settings", "audio") and spec.audio_default is True
        assert spec.audio_sample_rate == 48000 and spec.architecture == "ltx-2.5"
    assert (fast_spec.recipe, pro.recipe) == (Recipe.FAST, Recipe.LTX25_PRO)
    assert not fast_spec.needs_distilled_lora and pro.needs_distilled_lora
    assert fast_spec.hosted_price(1280, 720, 10) == pytest.approx(0.9)
    assert pro.hosted_price(1080, 1920, 10) == pytest.approx(1.7)
    assert fast_spec.hosted_price(3840, 2160, 10) is None  # no published 4K price


def test_only_models_with_a_duration_head_may_leave_the_duration_out():
    request = GenerationRequest(model=FAST, prompt="a cat", width=1920, height=1080, duration=None, fps=48, audio=True)
    assert validate_request(request).id == FAST
    with pytest.raises(RequestError) as refused:
        validate_request(GenerationRequest(model="lightricks:ltx@2.3", prompt="a cat", width=1920, height=1080,
                                           duration=None, fps=25, audio=True))  # fmt: skip
    assert refused.value.parameter == "duration"
    with pytest.raises(RequestError) as refused:
        validate_request(GenerationRequest(model=PRO, prompt="a cat", width=1280, height=720, duration=6, fps=48,
                                           audio=True))  # fmt: skip
    assert refused.value.parameter == "fps"  # Pro has no 48 fps


# --- the tiny 2.5 weights are diffusers' 2.5 components ------------------------------------------------------------


def test_tiny_2_5_weights_use_diffusers_2_5_classes_and_switches(engine):
    from diffusers.pipelines.ltx2 import LTX2DurationHead
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE
    from transformers import Gemma4UnifiedForConditionalGeneration

    pipeline = engine.load(TINY_FAST).pipeline
    assert isinstance(pipeline.text_encoder, Gemma4UnifiedForConditionalGeneration)
    assert pipeline.text_encoder.config.gemma_version == "gemma4-12b-ltx-v1"
    assert isinstance(pipeline.duration_head, LTX2DurationHead)
    assert isinstance(pipeline.vocoder, LTX2VocoderWithBWE) and pipeline.vocoder.config.output_sampling_rate == 48000
    transformer = pipeline.transformer
    assert transformer.config.ff_bias is False and transformer.config.audio_ff_bias is True
    assert transformer.config.use_keyframes_abs_pos_embedding is True
    names = {name for name, _ in transformer.named_parameters()}
    assert "keyframes_abs_pos_embedding" in names
    assert not any(name.endswith(".bias") and ".ff." in name and "audio_ff" not in name for name in names)
    assert any(name.endswith(".bias") and ".audio_ff." in name for name in names)
    assert engine.load(TINY_PRO) is engine.load(TINY_FAST)  # one resident copy for both 2.5 stand-ins


def test_the_2_5_image_crf_is_18(engine):
    from ltx_runtime.engine import image_crf

    assert image_crf(engine.load(TINY_FAST)) == 18  # LTX_2_4_IMAGE_CRF (ltx-pipelines constants.py)
    assert image_crf(engine.load("ltx-runtime:tiny-ltx23@1")) == 33


# --- the Euler-ancestral step and the schedules, against the official formulas --------------------------------------


def official_ancestral_step(x, x0, sigma, sigma_next, noise, eta=1.0, s_noise=1.0):
    """ltx-core 1.2.0 `EulerAncestralDiffusionStep.step`, transcribed in numpy, float32 as the official (its sigmas
    are a float32 tensor, its latents cast to float32)."""
    sigma, sigma_next = np.float32(sigma), np.float32(sigma_next)
    if sigma_next == 0:
        return x0
    downstep_ratio = 1.0 + (sigma_next / sigma - 1.0) * eta
    sigma_down = sigma_next * downstep_ratio
    sigma_down_ratio = sigma_down / sigma
    x_next = sigma_down_ratio * x + (1.0 - sigma_down_ratio) * x0
    if eta > 0:
        alpha_next, alpha_down = 1.0 - sigma_next, 1.0 - sigma_down
        renoise_coeff = np.maximum(sigma_next**2 - sigma_down**2 * alpha_next**2 / alpha_down**2, np.float32(0)) ** 0.5
        x_next = (alpha_next / alpha_down) * x_next + noise * s_noise * renoise_coeff
    return x_next


DISTILLED = [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0]  # ltx-pipelines constants.py
STAGE_2 = [0.909375, 0.725, 0.421875, 0.0]


@pytest.mark.parametrize("step", range(len(DISTILLED) - 1))
def test_the_ancestral_step_is_the_official_one_on_the_distilled_schedule(step):
    generator = torch.Generator().manual_seed(step)
    x, x0, noise = (torch.randn(2, 300, 8, generator=generator) for _ in range(3))
    sigma, sigma_next = DISTILLED[step], DISTILLED[step + 1]
    ours = ancestral.euler_ancestral_step(x, x0, sigma, sigma_next, noise)
    expected = official_ancestral_step(x.numpy(), x0.numpy(), sigma, sigma_next, noise.numpy())
    assert expected.dtype == np.float32
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6, rtol=0)


def test_the_ancestral_step_keeps_the_marginal_noise_level():
    """From pure noise of level sigma around x0 = 0, one step lands at noise level sigma_next (variance preserving):
    a property the plain Euler step with fresh noise added would not have."""
    generator = torch.Generator().manual_seed(0)
    sigma, sigma_next = 0.909375, 0.725
    x = sigma * torch.randn(400_000, generator=generator)
    stepped = ancestral.euler_ancestral_step(x, torch.zeros_like(x), sigma, sigma_next, torch.randn(400_000, generator=generator))
    assert stepped.std().item() == pytest.approx(sigma_next, rel=0.01)


def test_eta_0_is_plain_euler_and_the_last_step_is_x0():
    generator = torch.Generator().manual_seed(1)
    x, x0 = torch.randn(50, generator=generator), torch.randn(50, generator=generator)
    velocity = (x - x0) / 0.725
    euler = x + velocity * (0.421875 - 0.725)
    torch.testing.assert_close(ancestral.euler_ancestral_step(x, x0, 0.725, 0.421875, None, eta=0.0), euler)
    torch.testing.assert_close(ancestral.euler_ancestral_step(x, x0, 0.421875, 0.0, None), x0)


def test_video_and_audio_draw_from_one_stream_seeded_seed_plus_10000():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ltx_runtime.configs import SCHEDULER

    scheduler = ancestral.ancestral_scheduler(FlowMatchEulerDiscreteScheduler(**SCHEDULER), seed=7)
    audio_scheduler = copy.deepcopy(scheduler)  # as diffusers' pipeline makes its audio scheduler
    assert audio_scheduler.noise is scheduler.noise
    video, audio = torch.zeros(1, 12, 4), torch.zeros(1, 5, 6)
    video_noise, audio_noise = scheduler.noise.draw(video), audio_scheduler.noise.draw(audio)
    reference = torch.Generator().manual_seed(7 + 10000)
    torch.testing.assert_close(video_noise, torch.randn(video.shape, generator=reference))  # video first,
    torch.testing.assert_close(audio_noise, torch.randn(audio.shape, generator=reference))  # then audio


def test_image_to_video_steps_draw_the_whole_latents_noise():
    """diffusers' image-to-video pipeline steps frames 1.. of the unpacked latents; the official loop draws for the
    whole packed latent: the frames after the first of that draw are what the step gets."""
    noise = ancestral.SharedNoise(3)
    unpacked = torch.zeros(1, 4, 2, 3, 5)  # [B, C, F - 1, H, W]: three latent frames, the first conditioned
    drawn = noise.draw(unpacked)
    full = torch.randn((1, 3 * 3 * 5, 4), generator=torch.Generator().manual_seed(3))
    as_video = full.reshape(1, 3, 3, 5, 4).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(drawn, as_video[:, :, 1:])


def test_the_2_5_sigma_schedules_are_the_official_ones():
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

    assert DISTILLED_SIGMA_VALUES + [0.0] == DISTILLED and STAGE_2_DISTILLED_SIGMA_VALUES + [0.0] == STAGE_2
    assert fast.STAGE_1_STEPS == 8 and fast.TOTAL_STEPS == 11
    params = guided.PARAMS[Recipe.LTX25_PRO]  # LTX_2_4_PARAMS: 30 steps, STG on block 28, the 2.3 guidance
    assert (params.steps, params.stg_block) == (30, 28)
    assert (params.video_cfg, params.video_stg, params.video_modality, params.video_rescale) == (3.0, 1.0, 3.0, 0.7)
    assert (params.audio_cfg, params.audio_stg, params.audio_modality, params.audio_rescale) == (7.0, 1.0, 3.0, 0.7)
    sigmas = guided.stage_1_sigmas(30)  # LTX2Scheduler().execute(30), without its final 0
    shift = math.exp(2.05)
    raw = [shift / (shift + (1 / s - 1)) for s in np.linspace(1.0, 0.0, 31)[:-1]]
    stretched = [1 - (1 - s) * (1 - 0.1) / (1 - raw[-1]) for s in raw]
    np.testing.assert_allclose(sigmas, stretched, atol=1e-12)


# --- the recipes on tiny 2.5 weights --------------------------------------------------------------------------------


def _calls(monkeypatch, owner, name):
    seen = []
    original = getattr(owner, name)

    def recording(self, *args, **kwargs):
        seen.append(float(self.sigmas[self.step_index if self.step_index is not None else 0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return seen


@pytest.mark.parametrize("model, ancestral_steps", [(TINY_FAST, 16), (TINY_PRO, 0), ("ltx-runtime:tiny-ltx23@1", 0)])
def test_only_2_5_fast_stage_1_is_ancestral(engine, monkeypatch, model, ancestral_steps):
    """2 x 8 ancestral steps (video and audio) in 2.5 Fast's stage 1, none in its stage 2, in Pro or in 2.3."""
    seen = _calls(monkeypatch, ancestral.EulerAncestralScheduler, "step")
    spec = get_model(model)
    plan = plan_generation(128, 64, 1, 8, spec.audio_sample_rate)
    recipe = fast if spec.recipe is Recipe.FAST else guided
    if recipe is guided:  # two steps are enough to tell: stage 1 of the guided recipe is never ancestral
        monkeypatch.setitem(guided.PARAMS, spec.recipe, replace(guided.PARAMS[spec.recipe], steps=2, stg_block=0))
    recipe.run(engine.load(model), spec, plan, asking(spec, plan, "a cat"), torch.Generator().manual_seed(1), lambda done, total: None)
    assert len(seen) == ancestral_steps
    if ancestral_steps:
        assert sorted(set(seen), reverse=True) == pytest.approx(DISTILLED[:-1])


def test_the_ancestral_noise_changes_the_clip_and_the_seed_fixes_it(engine, monkeypatch):
    spec = get_model(TINY_FAST)
    components = engine.load(TINY_FAST)
    plan = plan_generation(128, 64, 1, 8, spec.audio_sample_rate)

    def latents(seed):
        output = fast.run(components, spec, plan, asking(spec, plan, "a cat"), torch.Generator().manual_seed(seed), lambda done, total: None)
        return output.video_latents

    first, again = latents(5), latents(5)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    monkeypatch.setattr(ancestral, "NOISE_SEED_OFFSET", 1)  # another step-noise stream, same initial noise
    assert not torch.allclose(first, latents(5))


# --- the duration head -----------------------------------------------------------------------------------------------


def test_the_duration_head_picks_an_8k_plus_1_frame_count_in_range(engine):
    pipeline = engine.load(TINY_FAST).pipeline
    for fps in (24, 25, 48, 50):
        seconds = engine.choose_duration(FAST, "a dog running over the ocean at sunset", fps)
        frames = seconds * fps
        assert frames == pytest.approx(round(frames)) and (round(frames) - 1) % 8 == 0
        assert 1.0 - 8 / fps <= seconds <= 20.0
        # the head's own answer, from the prompt's connector outputs, as diffusers' auto-duration path asks it
        embeds, mask, _, _ = pipeline.encode_prompt("a dog running over the ocean at sunset", do_classifier_free_guidance=False)
        video, audio, _ = pipeline.connectors(embeds, mask, padding_side="left")
        expected = pipeline.duration_head.predict_num_frames(video, audio, frame_rate=fps, temporal_compression_ratio=8)
        assert round(frames) == expected
    with pytest.raises(RequestError):
        engine.choose_duration("lightricks:ltx@2.3", "a dog", 25)


def test_a_clip_without_duration_gets_the_heads_choice(engine, tmp_path):
    out = tmp_path / "auto.mp4"
    result = engine.generate(
        GenerationRequest(model=TINY_FAST, prompt="a cat dancing", width=96, height=64, duration=None, fps=24,
                          audio=True, seed=2), out)  # fmt: skip
    chosen = engine.choose_duration(TINY_FAST, "a cat dancing", 24)
    assert result.duration == pytest.approx(chosen) and result.frames == round(chosen * 24)
    info = probe(out)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, result.frames, 24)
    assert (info.audio_rate, info.audio_channels) == (48000, 2)
    assert info.audio_duration == pytest.approx(result.duration, abs=0.03)


@pytest.mark.parametrize("model", [TINY_FAST, TINY_PRO])
def test_2_5_clips_have_the_asked_shape_and_48_khz_stereo(engine, tmp_path, model):
    out = tmp_path / "clip.mp4"
    result = engine.generate(GenerationRequest(model=model, prompt="rain over a city at night", width=136, height=72,
                                               duration=2, fps=25, audio=True, seed=4), out)  # fmt: skip
    info = probe(out)
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 136, 72, 50, 25)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert info.audio_duration == pytest.approx(2.0, abs=0.03)
    assert result.tiny_weights


def test_a_first_frame_image_conditions_2_5_fast(engine, tmp_path):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), (200, 30, 30)).save(buffer, format="PNG")
    out = tmp_path / "i2v.mp4"
    engine.generate(GenerationRequest(model=TINY_FAST, prompt="a red wall", width=128, height=64, duration=1, fps=9,
                                      audio=False, seed=1, keyframes=(Keyframe(buffer.getvalue()),)), out)  # fmt: skip
    assert probe(out).frames == 9



# --- the keyframe embedding on the first latent frame, as ltx-core 1.2.0 adds it ----------------------------------


def first_frame_inputs(engine, model: str, frames: tuple[int, ...] = ()) -> tuple[list[dict], torch.Tensor | None]:
    """Run `model`'s recipe at 96 x 64 px, 9 frames (with images at `frames`), the transformer's keyframe embedding
    random; per transformer pass the latents, per-token timesteps and marker it was given, its video output (before
    the recipe's hooks), its input projection's output and the first block's input, and the embedding used."""
    from ltx_runtime.recipes import ConditioningImage

    spec = get_model(model)
    components = engine.load(model)
    transformer = components.pipeline.transformer
    passes = []
    hooks = [
        transformer.register_forward_pre_hook(lambda module, args: passes.append({})),
        # a forward hook sees the inputs as the recipe's pre-hooks (registered later, run later) left them
        transformer.register_forward_hook(
            lambda module, args, kwargs, output: passes[-1].update(mask=kwargs.get("video_keyframes_mask"),
                                                                   tokens=kwargs["height"] * kwargs["width"],
                                                                   latents=kwargs["hidden_states"].clone(),
                                                                   timestep=kwargs["timestep"],
                                                                   velocity=output[0].clone()),
            with_kwargs=True),
        transformer.proj_in.register_forward_hook(lambda module, args, output: passes[-1].update(projected=output)),
        transformer.transformer_blocks[0].register_forward_pre_hook(
            lambda module, args, kwargs: passes[-1].update(block_input=kwargs["hidden_states"]), with_kwargs=True),
    ]  # fmt: skip
    embedding = getattr(transformer, "keyframes_abs_pos_embedding", None)
    saved = used = None if embedding is None else embedding.detach().clone()
    try:
        if embedding is not None:
            with torch.no_grad():
                used = embedding.normal_(generator=torch.Generator().manual_seed(0)).detach().clone()
        plan = plan_generation(96, 64, 1, 9, spec.audio_sample_rate)
        pixels = np.full((64, 96, 3), 90, np.uint8)
        images = tuple(ConditioningImage(pixels, frame) for frame in frames)
        module = fast if spec.recipe is Recipe.FAST else guided
        module.run(components, spec, plan, asking(spec, plan, "a lighthouse"), torch.Generator().manual_seed(5),
                   lambda done, total: None, images=images)  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()
        if embedding is not None:
            with torch.no_grad():
                embedding.copy_(saved)
    return passes, used


@pytest.mark.parametrize("model, frames", [(TINY_FAST, ()), (TINY_PRO, ()), (TINY_FAST, (0,)), (TINY_FAST, (0, 8))])
def test_2_5_adds_the_keyframe_embedding_to_the_first_latent_frame(engine, model, frames):
    """ltx-core 1.2.0 (400fd31): `VideoLatentTools.create_initial_state` marks the first latent frame's tokens
    (`_first_frame_keyframes_mask`), conditioning items append unmarked tokens (`extend_keyframes_mask(marked=False)`),
    and `apply_keyframes_absolute_embedding` adds `mask * embedding` after the input projection: in every pass of
    every stage, text-to-video, image-to-video and keyframes alike (docs/fidelity.md, LTX-2.5)."""
    passes, embedding = first_frame_inputs(engine, model, frames)
    assert len(passes) > 3 and {len(p) for p in passes} == {7}
    latent_frames = 2 + (len(frames) > 1)  # 9 frames: 2 latent frames, and the last frame's appended tokens
    for inputs in passes:
        mask, tokens = inputs["mask"], inputs["tokens"]
        official = torch.zeros_like(mask)
        official[:, :tokens] = 1.0  # the first latent frame: height x width tokens, frame-major
        torch.testing.assert_close(mask, official, rtol=0, atol=0)
        added = inputs["block_input"] - inputs["projected"]
        torch.testing.assert_close(added, official * embedding.to(added.dtype), rtol=0, atol=1e-6)
        assert mask.shape[1] == tokens * latent_frames


def test_2_5_fast_keeps_the_conditioned_tokens_clean_through_the_ancestral_steps(engine):
    """ltx-core 1.2.0's ancestral loop sets the conditioned tokens (first frame, keyframes: strength 1) back to their
    clean values after every step (`_ancestral_euler_denoising_loop`: `post_process_latent` after the noise), so
    every stage-1 pass sees them unchanged; the ancestral step alone would re-noise them."""
    passes, _ = first_frame_inputs(engine, TINY_FAST, (0, 8))
    frame = passes[0]["tokens"]
    stage_1 = [inputs for inputs in passes if inputs["tokens"] == frame]
    assert len(stage_1) == 8
    for inputs in stage_1[1:]:
        for tokens in (slice(0, frame), slice(-frame, None)):  # the first latent frame, the appended last frame
            torch.testing.assert_close(inputs["latents"][:, tokens], stage_1[0]["latents"][:, tokens], rtol=0, atol=0)
    assert not torch.equal(stage_1[1]["latents"][:, frame:-frame], stage_1[0]["latents"][:, frame:-frame])


def test_2_5_pro_guides_a_first_frame_with_the_clean_latent_as_its_x0(engine):
    """The first guided step of 2.5 Pro with a first frame, against ltx-core 1.2.0's formulas transcribed: each pass's
    x0 from each token's own timestep (`X0Model`: x - velocity * sigma * denoise mask, so the clean image latent on
    its tokens), `MultiModalGuider.calculate` (CFG, STG, modality, then the rescale by the std over all tokens),
    the conditioned tokens' x0 set clean (`post_process_latent`) and `EulerDiffusionStep`. diffusers converts every
    token with the step's sigma, which changes the rescale's std (docs/fidelity.md, 2.5 Pro with a first frame)."""
    passes, _ = first_frame_inputs(engine, TINY_PRO, (0,))
    params = guided.PARAMS[Recipe.LTX25_PRO]
    sigma, next_sigma = guided.stage_1_sigmas(params.steps)[:2]
    both, perturbed, isolated, after = passes[:4]  # step 1: [negative, positive] prompts, STG, modality; step 2
    latents = both["latents"][1:].float()
    assert torch.equal(both["timestep"][1], perturbed["timestep"][0])
    token_sigmas = (both["timestep"] / 1000.0).unsqueeze(-1)  # 0 on the image's tokens, sigma elsewhere
    clean = token_sigmas[1, :, 0] == 0
    assert clean.sum() == both["tokens"]
    torch.testing.assert_close(token_sigmas[1, ~clean], torch.full_like(token_sigmas[1, ~clean], sigma))

    def x0(inputs, index=0):
        return inputs["latents"][index:index + 1] - inputs["velocity"][index:index + 1] * token_sigmas[index:index + 1]

    negative, positive = x0(both, 0), x0(both, 1)
    guided_x0 = (positive + (params.video_cfg - 1) * (positive - negative)
                 + params.video_stg * (positive - x0(perturbed)) + (params.video_modality - 1) * (positive - x0(isolated)))
    factor = params.video_rescale * positive.std() / guided_x0.std() + (1 - params.video_rescale)
    guided_x0 = torch.where(clean[None, :, None], latents, guided_x0 * factor)
    official = latents + (latents - guided_x0) / sigma * (next_sigma - sigma)
    torch.testing.assert_close(after["latents"][1:], official, rtol=0, atol=2e-5)
    torch.testing.assert_close(after["latents"][1:, clean], latents[:, clean], rtol=0, atol=0)


def test_architectures_without_the_keyframe_embedding_get_no_marker(engine):
    passes, embedding = first_frame_inputs(engine, "ltx-runtime:tiny-ltx23@1")
    assert embedding is None
    assert passes and all(inputs["mask"] is None for inputs in passes)
    assert all(torch.equal(inputs["block_input"], inputs["projected"]) for inputs in passes)


# --- both contracts ---------------------------------------------------------------------------------------------------


def runware_task(**fields):
    import uuid

    return {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": FAST,
            "positivePrompt": "a cat on a boat", **fields}  # fmt: skip


def test_runware_takes_the_2_5_tiers_with_their_defaults():
    from server.api.runware.validation import validate_video_inference

    job = validate_video_inference(runware_task(), demo=False)
    assert (job.model, job.width, job.height, job.duration, job.fps, job.audio) == (FAST, 1920, 1080, None, 25, True)
    job = validate_video_inference(runware_task(model=PRO, width=720, height=1280, duration="6", fps=50,
                                                settings={"audio": False}), demo=False)  # fmt: skip
    assert (job.width, job.height, job.duration, job.fps, job.audio) == (720, 1280, 6.0, 50, False)
    assert validate_video_inference(runware_task(width=3840, height=2160, fps=48, duration=20), demo=False).duration == 20


@pytest.mark.parametrize(
    "fields, parameter",
    [(dict(model=PRO, fps=48), "fps"), (dict(model=PRO, width=3840, height=2160), "width"),
     (dict(duration=7), "duration"), (dict(duration="auto"), "duration"), (dict(duration=True), "duration"),
     (dict(settings={"audio": "yes"}), "settings.audio"), (dict(providerSettings={}), "providerSettings")],
)  # fmt: skip
def test_runware_refuses_what_the_2_5_tiers_do_not_take(fields, parameter):
    from server.api.runware.protocol import ContractError
    from server.api.runware.validation import validate_video_inference

    with pytest.raises(ContractError) as refused:
        validate_video_inference(runware_task(**fields), demo=False)
    assert refused.value.parameter == parameter


def test_runcomfy_ltx_2_5_paths():
    from server.api.runcomfy.protocol import RunComfyError
    from server.api.runcomfy.validation import resolve_model, validate_submit

    fast_spec = resolve_model("ltx/ltx-2-5/fast", "text-to-video", False)
    job = validate_submit({"prompt": "a cat"}, fast_spec, "text-to-video")
    assert (job.model, job.width, job.height, job.duration, job.fps, job.audio) == (FAST, 1920, 1080, None, 25, True)
    job = validate_submit({"prompt": "a cat", "resolution": "720p", "aspect_ratio": "9:16", "duration": 8, "fps": 48},
                          fast_spec, "text-to-video")  # fmt: skip
    assert (job.width, job.height, job.duration, job.fps) == (720, 1280, 8.0, 48)
    pro = resolve_model("ltx/ltx-2-5/pro", "image-to-video", False)
    job = validate_submit({"prompt": "a dog", "image_url": "https://example.com/dog.png"}, pro, "image-to-video")
    assert job.model == PRO and job.frame_images == [{"image": "https://example.com/dog.png", "frame": 0}]
    with pytest.raises(RunComfyError) as refused:
        validate_submit({"prompt": "a dog", "resolution": "2160p"}, pro, "text-to-video")
    assert refused.value.parameter == "resolution"
    assert resolve_model("ltx-runtime/tiny-ltx25/pro", "text-to-video", True).id == TINY_PRO
    # the LTX-2 paths keep their default duration and refuse a portrait size they do not have
    ltx2 = resolve_model("ltx/ltx-2/fast", "text-to-video", False)
    assert validate_submit({"prompt": "a cat"}, ltx2, "text-to-video").duration == 6.0
    with pytest.raises(RunComfyError):
        validate_submit({"prompt": "a cat", "aspect_ratio": "9:16"}, ltx2, "text-to-video")


# --- the done-when commands ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model, fps", [(FAST, 48), (PRO, 50)])
def test_the_cli_writes_2_5_clips_of_the_asked_shape(tiny_root, tmp_path, model, fps):
    """`ltx-runtime generate --weights tiny --model lightricks:ltx@2.5-fast` (and -pro), a real process, probed."""
    import os
    import subprocess
    import sys

    out = tmp_path / "clip.mp4"
    env = dict(os.environ, LTX_TINY_DIR=str(tiny_root))
    done = subprocess.run([sys.executable, "-m", "ltx_runtime", "generate", "--weights", "tiny", "--model", model,
                           "--width", "720", "--height", "1280", "--duration", "2", "--fps", str(fps), "--audio",
                           "-p", "a sunset over the ocean", "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    info = probe(out)
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 720, 1280, 2 * fps, fps)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert info.audio_duration == pytest.approx(2.0, abs=0.03)
    assert f"{2 * fps} frames at {fps} fps, 2 s, 48000 Hz stereo audio" in done.stdout


# --- memory ------------------------------------------------------------------------------------------------------------


def test_2_5_refusals_name_the_memory_profile_that_would_fit():
    """An 80 GB card: 4K in bf16 does not fit LTX-2.5 Fast even frugally, fp8 does; 20 s of 4K at 50 fps fits no
    profile, and the refusal then names none. (1080p fits bf16 there only frugally: the text encoder leaves the GPU.)"""
    from ltx_runtime.admission import MemoryLimitError, check_memory
    from ltx_runtime.admission import GIB, MemoryProfile
    from ltx_runtime.memory import budget_for

    budget = budget_for(79 * GIB, None)  # what an "80 GB" card reports
    spec = get_model(FAST)
    assert check_memory(spec, plan_generation(1920, 1080, 10, 25, 48000), MemoryProfile.RESIDENT, budget).frugal
    four_k = plan_generation(3840, 2160, 10, 25, 48000)
    with pytest.raises(MemoryLimitError) as refused:
        check_memory(spec, four_k, MemoryProfile.RESIDENT, budget)
    assert "the 'fp8' memory profile (LTX_MEMORY_PROFILE=fp8), which fits" in str(refused.value)
    check_memory(spec, four_k, MemoryProfile.FP8, budget)
    longest = plan_generation(3840, 2160, 20, 50, 48000)
    with pytest.raises(MemoryLimitError) as refused:
        check_memory(spec, longest, MemoryProfile.RESIDENT, budget)
    assert "memory profile" not in str(refused.value).split("ask for")[1]
