"""Every recipe on tiny weights: Fast, Pro (guided + distilled LoRA in stage 2) and LTX-2.3 (guided, 48 kHz audio).

The demo models `ltx-runtime:tiny-pro@1` and `ltx-runtime:tiny-ltx23@1` run the Pro and LTX-2.3 recipes and weights
architectures at small sizes; the hosted ids run the very same code at hosted sizes.
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from conftest import probe
from ltx_runtime.request import GenerationRequest, Keyframe

TINY_PRO, TINY_LTX23 = "ltx-runtime:tiny-pro@1", "ltx-runtime:tiny-ltx23@1"


def first_frame_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def request(model, **fields):
    values = dict(model=model, prompt="a lighthouse in a storm", width=96, height=64, duration=1, fps=9, audio=True,
                  seed=4)
    values.update(fields)
    return GenerationRequest(**values)


@pytest.mark.slow
@pytest.mark.parametrize("model, steps", [(TINY_PRO, 43), (TINY_LTX23, 33)])
def test_guided_recipes_report_every_step(engine, tmp_path, model, steps):
    seen = []
    engine.generate(request(model), tmp_path / "clip.mp4", progress=lambda stage, fraction: seen.append((stage, fraction)))
    guided_steps = steps - 3  # 40 (Pro) or 30 (2.3) guided steps + 3 refine steps
    assert [fraction for stage, fraction in seen if stage == "stage_1"] == [i / guided_steps for i in range(1, guided_steps + 1)]
    assert [fraction for stage, fraction in seen if stage == "stage_2"] == [1 / 3, 2 / 3, 1.0]


@pytest.mark.slow
def test_pro_uses_the_distilled_lora_in_stage_2_only(engine, tmp_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    transformer = engine.load(TINY_PRO).pipeline.transformer
    layers = [module for module in transformer.modules() if isinstance(module, BaseTunerLayer)]
    assert layers, "the distilled LoRA is loaded into the resident transformer"
    calls = []  # (video tokens, LoRA active) per transformer call
    handle = transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(
            (kwargs["hidden_states"].shape[1], not any(layer.disable_adapters for layer in layers))
        ),
        with_kwargs=True,
    )
    try:
        engine.generate(request(TINY_PRO), tmp_path / "clip.mp4")  # generated at 128x64, 9 frames: 2 latent frames
    finally:
        handle.remove()
    stage_1 = [active for tokens, active in calls if tokens == 2 * 1 * 2]  # 64x32 pixels: 2x1 latents per frame
    stage_2 = [active for tokens, active in calls if tokens == 2 * 2 * 4]
    # Stage 1: 40 steps x 3 calls (the CFG pair batched, then the STG and modality passes), LoRA off throughout.
    assert len(stage_1) == 120 and not any(stage_1)
    assert len(stage_2) == 3 and all(stage_2)  # the 3 refine steps, LoRA on
    assert all(layer.disable_adapters for layer in layers)  # and off again afterwards


def test_switching_the_lora_on_changes_the_transformer(engine):
    """So that the test above measures something: the tiny LoRA is not a no-op."""
    pipe = engine.load(TINY_PRO).pipeline
    inputs = dict(
        hidden_states=torch.randn(1, 8, 8), audio_hidden_states=torch.randn(1, 5, 32),
        encoder_hidden_states=torch.randn(1, 4, 32), audio_encoder_hidden_states=torch.randn(1, 4, 32),
        timestep=torch.tensor([500.0]), num_frames=2, height=2, width=2, fps=25.0, audio_num_frames=5,
        return_dict=False,
    )  # fmt: skip
    with torch.inference_mode():
        without = pipe.transformer(**inputs)[0]
        pipe.enable_lora()
        with_lora = pipe.transformer(**inputs)[0]
        pipe.disable_lora()
    assert not torch.allclose(without, with_lora)


@pytest.mark.slow
@pytest.mark.parametrize("model, rate", [("ltx-runtime:tiny@1", 24000), (TINY_PRO, 24000), (TINY_LTX23, 48000)])
@pytest.mark.parametrize("with_image", [False, True])
def test_each_recipe_writes_a_clip(engine, tmp_path, model, rate, with_image):
    result = engine.generate(request(model, keyframes=(Keyframe(first_frame_png()),) if with_image else ()), tmp_path / "clip.mp4")
    info = probe(result.path)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 9, 9)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", rate, 2)
    assert info.audio_duration == pytest.approx(1.0, abs=0.03)
    assert result.sample_rate == rate


@pytest.mark.slow
def test_without_audio_there_is_no_audio_stream(engine, tmp_path):
    info = probe(engine.generate(request(TINY_LTX23, audio=False), tmp_path / "clip.webm").path)
    assert info.audio_codec is None and info.frames == 9


def test_ltx23_weights_have_the_2_3_architecture(engine):
    pipe = engine.load(TINY_LTX23).pipeline
    config = pipe.transformer.config
    assert config.gated_attn and config.cross_attn_mod and config.perturbed_attn and not config.use_prompt_embeddings
    assert pipe.connectors.config.per_modality_projections
    assert type(pipe.vocoder).__name__ == "LTX2VocoderWithBWE" and pipe.vocoder.config.output_sampling_rate == 48000
