"""The engine end to end on tiny weights: the two-stage Fast recipe, reproducibility, every output format."""

import numpy as np
import pytest
import torch

from conftest import probe, read_frames
from ltx_runtime.engine import GenerationRequest, RequestError
from ltx_runtime.media import OutputFormat
from ltx_runtime.recipes import fast

TINY = "ltx-runtime:tiny@1"


def request(**overrides):
    fields = dict(model=TINY, prompt="a cat over the ocean", width=200, height=104, duration=1, fps=17, audio=True, seed=7)
    fields.update(overrides)
    return GenerationRequest(**fields)


def test_two_stage_recipe_shapes_and_progress(engine, tmp_path, monkeypatch):
    """Stage 1 runs at half the generation size, the upsampler doubles it, stage 2 refines at full size."""
    calls = []
    original_run = fast.run

    def recording_run(components, plan, prompt, generator, on_step):
        output = original_run(components, plan, prompt, generator, on_step)
        calls.append((plan, output))
        return output

    upsampler_inputs = []
    components = engine.load(TINY)
    handle = components.latent_upsampler.register_forward_hook(
        lambda module, args, result: upsampler_inputs.append((args[0].shape, result.shape))
    )
    monkeypatch.setattr(fast, "run", recording_run)
    steps = []
    try:
        result = engine.generate(request(), tmp_path / "clip.mp4", progress=lambda done, total: steps.append((done, total)))
    finally:
        handle.remove()

    assert steps == [(i, 11) for i in range(1, 12)]  # 8 distilled sigmas + 3 stage-2 sigmas
    (plan, output), = calls
    assert (plan.gen_width, plan.gen_height, plan.gen_frames) == (256, 128, 17)
    # stage 1: 128x64 pixels -> 4x2 latents; upsampler: x2 -> 8x4; 17 frames -> 3 latent frames
    assert upsampler_inputs == [((1, 8, 3, 2, 4), (1, 8, 3, 4, 8))]
    assert output.video_latents.shape == (1, 8, 3, 4, 8)
    assert output.audio_latents.shape == (1, 2, 25, 16)  # 17/17 s of audio at 25 latents/s, 64 mel bins / 4
    assert set(output.timings) == {"text_encoding", "stage_1", "upsample", "stage_2"}
    assert set(result.timings) >= {"stage_1", "stage_2", "audio_decode", "decode_and_encode", "total"}
    assert result.tiny_weights and result.seed == 7


@pytest.mark.parametrize("output_format", list(OutputFormat))
@pytest.mark.parametrize("audio", [True, False])
def test_every_format_with_and_without_audio(engine, tmp_path, output_format, audio):
    path = tmp_path / f"clip.{output_format.value}"
    result = engine.generate(request(output_format=output_format, audio=audio, duration=2, fps=12), path)
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (200, 104, 24, 12)
    assert info.duration == pytest.approx(2.0, abs=0.03)
    assert info.video_codec == ("vp9" if output_format is OutputFormat.WEBM else "h264")
    if audio:
        assert info.audio_codec == ("opus" if output_format is OutputFormat.WEBM else "aac")
        assert info.audio_channels == 2
        assert info.audio_rate == (48000 if output_format is OutputFormat.WEBM else 24000)
        assert info.audio_duration == pytest.approx(2.0, abs=0.03)
        assert result.sample_rate == 24000
    else:
        assert info.audio_codec is None and result.sample_rate is None
    assert (result.width, result.height, result.frames, result.fps, result.duration) == (200, 104, 24, 12, 2)


def test_same_seed_same_frames_other_seed_other_frames(engine, tmp_path):
    first = engine.generate(request(seed=1234), tmp_path / "a.mp4")
    second = engine.generate(request(seed=1234), tmp_path / "b.mp4")
    third = engine.generate(request(seed=4321), tmp_path / "c.mp4")
    a, b, c = (read_frames(r.path) for r in (first, second, third))
    assert a.shape == (17, 104, 200, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


def test_models_stay_resident_between_calls(engine, tmp_path):
    components = engine.load(TINY)
    result = engine.generate(request(), tmp_path / "clip.mp4")
    assert engine.load(TINY) is components
    assert "loading" not in result.timings


def test_components_are_shared_not_copied(engine):
    components = engine.load(TINY)
    denoise, upsample = fast._pipelines(components)
    assert denoise.transformer is components.pipeline.transformer
    assert denoise.text_encoder is components.pipeline.text_encoder
    assert upsample.vae is components.pipeline.vae
    assert upsample.latent_upsampler is components.latent_upsampler
    assert denoise.scheduler.config.use_dynamic_shifting is False  # distilled sigmas are used as published


def test_a_random_seed_is_chosen_and_reported(engine, tmp_path):
    result = engine.generate(request(seed=None), tmp_path / "clip.mp4")
    assert 0 <= result.seed < 2**63


def test_cpu_engine_runs_in_float32(engine):
    assert engine.device == torch.device("cpu")
    assert engine.load(TINY).pipeline.transformer.dtype == torch.float32


@pytest.mark.parametrize(
    "overrides, parameter",
    [
        (dict(model="lightricks:9@9"), "model"),
        (dict(prompt="a"), "prompt"),
        (dict(width=100), "width"),
        (dict(model="lightricks:2@1", width=1280, height=720), "width"),
        (dict(duration=11), "duration"),
        (dict(duration=1.5), "duration"),
        (dict(fps=60), "fps"),
        (dict(seed=-1), "seed"),
        (dict(quality=100), "quality"),
        # catalogued, but its recipe arrives with the models milestone
        (dict(model="lightricks:2@0", width=1920, height=1080, duration=6, fps=25), "model"),
    ],
)
def test_bad_requests_name_the_parameter(engine, tmp_path, overrides, parameter):
    with pytest.raises(RequestError) as raised:
        engine.generate(request(**overrides), tmp_path / "clip.mp4")
    assert raised.value.parameter == parameter
    assert not (tmp_path / "clip.mp4").exists()
