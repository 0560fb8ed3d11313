"""The recipes against Lightricks' official pipelines (ltx2-models.md section 2a): the guided stage-1 schedule at
every hosted size, STG on LTX-2.0, stage-1 audio in the guided recipes, v1.2.0's cross-attention timesteps and
the current negative prompt. Each test fails on the recipes as they were before these fixes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.ltx2 import pipeline_ltx2

from conftest import asking
from ltx_runtime import configs
from ltx_runtime.catalog import Recipe, get_model, hosted_models
from ltx_runtime.engine import Engine
from ltx_runtime.geometry import plan_generation
from ltx_runtime.recipes import ConditioningImage, fast, guided
from ltx_runtime.tiny import build_tiny_weights


TINY_FAST, TINY_PRO, TINY_LTX23 = "ltx-runtime:tiny@1", "ltx-runtime:tiny-pro@1", "ltx-runtime:tiny-ltx23@1"
TINY_GUIDED = {"ltx-2": TINY_PRO, "ltx-2.3": TINY_LTX23, "ltx-2.5": "ltx-runtime:tiny-ltx25-pro@1"}
"""The tiny stand-in that runs each architecture's guided recipe."""


def official_schedule(steps: int) -> torch.Tensor:
    """ltx-core `LTX2Scheduler().execute(steps)` (no latent: 4096 tokens, shift 2.05; stretch to 0.1), in float32."""
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    sigmas = torch.where(sigmas != 0, math.exp(2.05) / (math.exp(2.05) + (1 / sigmas - 1)), 0)
    non_zero = sigmas != 0
    one_minus = 1.0 - sigmas[non_zero]
    sigmas[non_zero] = 1.0 - one_minus / (one_minus[-1] / (1.0 - 0.1))
    return sigmas


class _Stop(Exception):
    pass


def stage_1_schedule(components, spec, plan, monkeypatch) -> torch.Tensor:
    """The sigmas the guided recipe's stage-1 scheduler really steps through for `plan` (its first call into
    diffusers' scheduler set-up is recorded, then the run is stopped before any transformer pass)."""
    seen = []
    original = pipeline_ltx2.retrieve_timesteps

    def recording(scheduler, *args, **kwargs):
        original(scheduler, *args, **kwargs)
        seen.append(scheduler.sigmas.clone())
        raise _Stop

    monkeypatch.setattr(pipeline_ltx2, "retrieve_timesteps", recording)
    with pytest.raises(_Stop):
        guided.run(components, spec, plan, asking(spec, plan, "a lighthouse"), torch.Generator().manual_seed(0),
                   lambda done, total: None)  # fmt: skip
    monkeypatch.undo()
    return seen[0]


@pytest.mark.parametrize("model", ["lightricks:2@0", "lightricks:ltx@2.3", "lightricks:ltx@2.5-pro"])
def test_the_guided_schedule_is_the_official_one_at_every_hosted_size(engine, model, monkeypatch):
    spec = get_model(model)
    components = engine.load(TINY_GUIDED[spec.architecture])
    # With the released scheduler config (dynamic shifting, shift_terminal 0.1) in place: the recipe must not use it.
    real_scheduler = FlowMatchEulerDiscreteScheduler(**configs.SCHEDULER)
    steps = guided.PARAMS[spec.recipe].steps
    expected = official_schedule(steps)
    assert expected[-2].item() == pytest.approx(0.1) and expected[-1].item() == 0.0
    checked = 0
    for width, height in spec.sizes:
        for duration in spec.durations:
            for fps in spec.fps_values:
                plan = plan_generation(width, height, duration, fps, spec.audio_sample_rate)
                with monkeypatch.context() as patch:
                    patch.setattr(components.pipeline, "scheduler", real_scheduler)
                    sigmas = stage_1_schedule(components, spec, plan, patch)
                assert not torch.isnan(sigmas).any(), (width, height, duration, fps)
                torch.testing.assert_close(sigmas.cpu(), expected, atol=1e-4, rtol=0, msg=f"{width}x{height} {duration}s {fps}fps")
                checked += 1
    # 18 for Pro, 72 for LTX-2.3, 144 for LTX-2.5 Pro
    assert checked == len(spec.sizes) * len(spec.durations) * len(spec.fps_values)


def test_a_requests_steps_cfg_scale_and_negative_prompt_reach_stage_1_and_the_defaults_are_official(engine, monkeypatch):
    spec = get_model(TINY_LTX23)
    components = engine.load(TINY_LTX23)
    plan = plan_generation(64, 64, 1, 25, spec.audio_sample_rate)

    def stage_1_arguments(request) -> dict:
        """The arguments the recipe gives stage 1 (stopped there) and the negative prompt it encodes."""
        from diffusers import LTX2Pipeline

        seen = {}
        encode = components.prompt_cache.encode

        def stop(pipe, **kwargs):
            seen.update(kwargs)
            raise _Stop

        def recording_encode(denoise, prompt, negative_prompt=None):
            seen["negative"] = negative_prompt
            return encode(denoise, prompt, negative_prompt)

        with monkeypatch.context() as patch:
            patch.setattr(LTX2Pipeline, "__call__", stop)
            patch.setattr(components.prompt_cache, "encode", recording_encode)
            with pytest.raises(_Stop):
                guided.run(components, spec, plan, request, torch.Generator().manual_seed(0), lambda done, total: None)
        return seen

    chosen = stage_1_arguments(asking(spec, plan, "a lighthouse", steps=5, guidance_scale=4.5, negative_prompt="fog"))
    assert (chosen["num_inference_steps"], chosen["guidance_scale"], chosen["negative"]) == (5, 4.5, "fog")
    torch.testing.assert_close(torch.tensor(chosen["sigmas"] + [0.0]), official_schedule(5), atol=1e-6, rtol=0)
    assert chosen["audio_guidance_scale"] == 7.0  # the audio CFG stays official
    defaults = stage_1_arguments(asking(spec, plan, "a lighthouse"))
    assert (defaults["num_inference_steps"], defaults["guidance_scale"]) == (30, 3.0)
    assert defaults["negative"] == guided.NEGATIVE_PROMPT


@pytest.fixture(scope="module")
def deep_engine(tmp_path_factory):
    """Tiny LTX-2.0 weights deep enough (30 blocks) for the Pro recipe's STG block, 29."""
    folder = build_tiny_weights(tmp_path_factory.mktemp("deep") / "ltx-2", "ltx-2", layers=30)
    return Engine(str(folder), lock={}, x264_preset="ultrafast")


def test_stg_perturbs_the_ltx2_transformer(deep_engine):
    """The Pro recipe's STG pass names block 29; on the LTX-2.0 transformer as diffusers configures it
    (`perturbed_attn=False`) that pass equals the plain one and STG is a no-op. Loaded with `perturbed_attn=True` (the
    weights are the same), block 29 skips its self-attention and the prediction changes."""
    transformer = deep_engine.load(TINY_PRO).pipeline.transformer
    assert transformer.config.perturbed_attn
    inputs = dict(
        hidden_states=torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(0)),
        audio_hidden_states=torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1)),
        encoder_hidden_states=torch.randn(1, 4, 32), audio_encoder_hidden_states=torch.randn(1, 4, 32),
        timestep=torch.tensor([500.0]), num_frames=2, height=2, width=2, fps=25.0, audio_num_frames=5,
        use_cross_timestep=False, return_dict=False,
    )  # fmt: skip
    with torch.inference_mode():
        video, audio = transformer(**inputs)
        stg_video, stg_audio = transformer(**inputs, spatio_temporal_guidance_blocks=guided.PARAMS[Recipe.PRO].guidance()["spatio_temporal_guidance_blocks"])
    assert (video - stg_video).abs().max() > 1e-3 * video.abs().max()
    assert (audio - stg_audio).abs().max() > 1e-3 * audio.abs().max()


def stg_calls(engine, monkeypatch, **params) -> list[bool]:
    """Per transformer call of a Pro recipe run (3 stage-1 steps), whether it was the STG pass (blocks named)."""
    components = engine.load(TINY_PRO)
    monkeypatch.setitem(guided.PARAMS, Recipe.PRO, replace(guided.PARAMS[Recipe.PRO], steps=3, **params))
    calls = []
    handle = components.pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs.get("spatio_temporal_guidance_blocks") is not None),
        with_kwargs=True,
    )
    try:
        plan = plan_generation(64, 64, 1, 9, 24000)
        guided.run(components, get_model(TINY_PRO), plan, asking(get_model(TINY_PRO), plan, "a lighthouse"),
                   torch.Generator().manual_seed(3), lambda done, total: None)  # fmt: skip
    finally:
        handle.remove()
    return calls


def test_the_stg_pass_runs_every_step_and_is_skipped_at_zero(engine, monkeypatch):
    assert stg_calls(engine, monkeypatch).count(True) == 3  # one STG pass per stage-1 step
    calls = stg_calls(engine, monkeypatch, video_stg=0.0, audio_stg=0.0)
    assert calls.count(True) == 0 and len(calls) == 3 * 2 + 3  # only the CFG pair and the modality pass; stage 2


def recipe_run_details(engine, model, monkeypatch) -> dict:
    """Run `model`'s recipe on tiny weights, recording the stage-1 and stage-2 audio latents, the audio latents the
    recipe returns, the `use_cross_timestep` of every transformer call and the negative prompt encoded."""
    spec = get_model(model)
    components = engine.load(model)
    module = fast if spec.recipe is Recipe.FAST else guided
    details = {"cross_timestep": set(), "negative_prompts": []}
    refine = module.upsample_and_refine

    def recording_refine(denoise, upsample, plan, video_latents, audio_latents, *args, **kwargs):
        details["stage_1_audio"] = audio_latents.clone()
        video_latents, details["stage_2_audio"] = refine(denoise, upsample, plan, video_latents, audio_latents, *args, **kwargs)
        return video_latents, details["stage_2_audio"]

    encode = components.prompt_cache.encode

    def recording_encode(denoise, prompt, negative_prompt=None):
        details["negative_prompts"].append(negative_prompt)
        return encode(denoise, prompt, negative_prompt)

    monkeypatch.setattr(module, "upsample_and_refine", recording_refine)
    monkeypatch.setattr(components.prompt_cache, "encode", recording_encode)
    handle = components.pipeline.transformer.register_forward_pre_hook(
        lambda _, args, kwargs: details["cross_timestep"].add(kwargs["use_cross_timestep"]), with_kwargs=True
    )
    try:
        plan = plan_generation(96, 64, 1, 9, spec.audio_sample_rate)
        output = module.run(components, spec, plan, asking(spec, plan, "a lighthouse"), torch.Generator().manual_seed(5),
                            lambda done, total: None)  # fmt: skip
    finally:
        handle.remove()
        monkeypatch.undo()
    details["audio"] = output.audio_latents
    return details


@pytest.mark.parametrize("model", [TINY_PRO, TINY_LTX23])
def test_guided_recipes_keep_stage_1_audio(engine, monkeypatch, model):
    details = recipe_run_details(engine, model, monkeypatch)
    torch.testing.assert_close(details["audio"], details["stage_1_audio"], rtol=0, atol=0)
    assert not torch.allclose(details["audio"], details["stage_2_audio"])  # stage 2 did change its copy
    assert details["cross_timestep"] == {False}  # own timesteps for the scale and shift (v1.2.0, every architecture)
    assert details["negative_prompts"] == [guided.NEGATIVE_PROMPT]


def test_fast_keeps_stage_2_audio_and_per_token_timesteps(engine, monkeypatch):
    details = recipe_run_details(engine, TINY_FAST, monkeypatch)
    torch.testing.assert_close(details["audio"], details["stage_2_audio"], rtol=0, atol=0)
    assert not torch.allclose(details["audio"], details["stage_1_audio"])
    assert details["cross_timestep"] == {False} and details["negative_prompts"] == [None]


@pytest.mark.parametrize("model", [TINY_FAST, TINY_LTX23])
def test_image_to_video_cross_attention_follows_v1_2_0(engine, model):
    """ltx-core v1.2.0 (Lightricks/LTX-2 400fd31, transformer_args.py `_prepare_cross_attention_timestep`) modulates
    the audio-video cross-attention of the video tokens with their own per-token timesteps (0 on the clean first
    frame) and gates it with the audio's sigma (one value per batch element). Until #26 LTX-2.0 gated with the
    per-token timesteps (diffusers' use_cross_timestep=False) and LTX-2.3 modulated with the sigma (True)."""
    spec, components = get_model(model), engine.load(model)
    transformer = components.pipeline.transformer
    inputs = {"scale_shift": [], "gate": []}
    handles = [
        getattr(transformer, module).register_forward_hook(lambda _, args, output, name=name: inputs[name].append(args[0]))
        for name, module in (("scale_shift", "av_cross_attn_video_scale_shift"), ("gate", "av_cross_attn_video_a2v_gate"))
    ]  # fmt: skip
    plan = plan_generation(64, 64, 1, 9, spec.audio_sample_rate)  # stage 1: 1 x 1 latent pixels, 2 latent frames
    image = ConditioningImage(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), 0)
    module = fast if spec.recipe is Recipe.FAST else guided
    try:
        module.run(components, spec, plan, asking(spec, plan, "a lighthouse"), torch.Generator().manual_seed(5),
                   lambda done, total: None, images=(image,))  # fmt: skip
    finally:
        for handle in handles:
            handle.remove()
    factor = transformer.config.cross_attn_timestep_scale_multiplier / transformer.config.timestep_scale_multiplier
    first_call_tokens = 2  # stage 1, batch element 0: the image's latent frame, then one generated frame
    scale_shift, gate = inputs["scale_shift"][0], inputs["gate"][0]
    assert scale_shift.numel() == gate.numel() * first_call_tokens
    assert scale_shift[0] == 0 and scale_shift[1] > 0  # the image's tokens are clean
    assert len(inputs["gate"]) == len(inputs["scale_shift"]) > 2
    for scale_shift, gate in zip(inputs["scale_shift"], inputs["gate"]):  # every pass of both stages
        assert gate.numel() < scale_shift.numel()
        torch.testing.assert_close(gate, torch.full_like(gate, scale_shift.max().item() * factor))


def test_the_negative_prompt_is_the_current_official_text():
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT as DIFFUSERS_TEXT

    tags = "has_subtitles, has_blurbox, transition from black, transition to black, speech_ending_short, "
    # The official v1.2.0 text is the five caption tags followed by the older text that diffusers 0.42.1 carries.
    assert guided.NEGATIVE_PROMPT == tags + DIFFUSERS_TEXT
    assert len(guided.NEGATIVE_PROMPT) == 1171  # checked against the v1.2.0 file


def test_hosted_guided_models_cover_every_architecture():
    """So that the schedule test above covers every guided hosted model."""
    guided_models = {spec.id for spec in hosted_models() if spec.recipe is not Recipe.FAST}
    assert guided_models == {"lightricks:2@0", "lightricks:ltx@2.3", "lightricks:ltx@2", "lightricks:ltx@2.5-pro"}


def test_the_ltx23_vocoder_runs_in_float32_when_the_rest_is_bf16(tiny_root):
    """The official LTX-2.3 pipeline runs its bandwidth-extension vocoder in float32 (bf16 costs ~0.33 relative L2)."""
    from ltx_runtime.decode import audio_waveform
    from ltx_runtime.weights import load_components

    spec = get_model(TINY_LTX23)
    pipe = load_components(tiny_root / "ltx-2.3", spec, torch.bfloat16).pipeline
    assert pipe.transformer.dtype == pipe.vae.dtype == pipe.audio_vae.dtype == torch.bfloat16
    assert {p.dtype for p in pipe.vocoder.parameters()} == {torch.float32}
    inputs = []
    handle = pipe.vocoder.register_forward_pre_hook(lambda module, args: inputs.append(args[0].dtype))
    try:
        plan = plan_generation(64, 64, 1, 25, 48000)
        latents = torch.randn(1, pipe.audio_vae.config.latent_channels, 25, 16, dtype=torch.bfloat16)
        waveform = audio_waveform(pipe.audio_vae, pipe.vocoder, latents, plan)
    finally:
        handle.remove()
    assert inputs == [torch.float32] and waveform.shape == (48000, 2)
    # LTX-2.0's vocoder follows the model's dtype, as officially.
    assert load_components(tiny_root / "ltx-2", get_model(TINY_PRO), torch.bfloat16).pipeline.vocoder.dtype == torch.bfloat16
