"""The speed levers on the CPU: each falls back to off (a warning when asked for explicitly), the VAE tile setting
and the prompt cache work, and the optimized path renders the same clip as plain diffusers."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import colour_tags, probe, read_frames

from ltx_runtime import decode, speed
from ltx_runtime.engine import Engine
from ltx_runtime.request import GenerationRequest
from ltx_runtime.speed import SpeedOptions


def request(**overrides) -> GenerationRequest:
    fields = dict(model="ltx-runtime:tiny@1", prompt="a dog by the ocean", width=256, height=128, duration=2, fps=25,
                  audio=True, seed=11)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


@pytest.fixture(scope="module")
def engines(tiny_root):
    plain = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", speed_options=SpeedOptions.plain())
    optimized = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast")
    return plain, optimized


def test_levers_that_need_cuda_stay_off_on_the_cpu(engines):
    plain, optimized = engines
    components = optimized.load("ltx-runtime:tiny@1")
    levers = optimized.levers[components.folder]
    for lever in ("attention", "compile"):
        assert levers[lever].startswith("off (")
    assert levers["fp8_matmul"] == "off"  # an explicit opt-in only, on every device
    vae = components.pipeline.vae
    assert levers["vae_tile_frames"] == "80"  # the official temporal tiles: 80 frames overlapping by 24
    assert (vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames) == (80, 56)
    plain_vae = plain.load("ltx-runtime:tiny@1").pipeline.vae  # the tiles are the recipe's, not a lever
    assert (plain_vae.tile_sample_min_num_frames, plain_vae.tile_sample_stride_num_frames) == (80, 56)
    assert levers["prompt_cache"] == "16"
    assert plain.levers[plain.load("ltx-runtime:tiny@1").folder]["prompt_cache"] == "0"


def test_an_explicit_lever_that_cannot_work_warns_and_stays_off(tiny_root, caplog):
    options = SpeedOptions(attention="flash3", compile="on", fp8_matmul="on", vae_tile_frames=24)
    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, speed_options=options)
    with caplog.at_level(logging.WARNING, logger="ltx_runtime.speed"):
        components = engine.load("ltx-runtime:tiny@1")
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 3 and all("unavailable" in message for message in warnings)
    assert components.pipeline.vae.tile_sample_min_num_frames == 24
    assert components.pipeline.vae.tile_sample_stride_num_frames == 12  # overlapping by half a tile


@pytest.mark.slow
def test_a_repeated_prompt_skips_the_text_encoder(engines, tmp_path):
    plain, optimized = engines
    calls = []
    for engine in (plain, optimized):
        text_encoder = engine.load("ltx-runtime:tiny@1").pipeline.text_encoder
        handle = text_encoder.register_forward_hook(lambda *args, engine=engine: calls.append(engine))
        try:
            for seed in (1, 2):
                engine.generate(request(seed=seed, prompt="a lighthouse in a storm"), tmp_path / f"{id(engine)}-{seed}.mp4")
        finally:
            handle.remove()
    assert calls.count(plain) == 2 and calls.count(optimized) == 1


@pytest.mark.slow
def test_the_optimized_path_renders_what_plain_diffusers_renders(engines, tmp_path):
    plain, optimized = engines
    frames = [read_frames(engine.generate(request(), tmp_path / f"{name}.mp4").path)
              for name, engine in (("plain", plain), ("optimized", optimized))]  # fmt: skip
    assert frames[0].shape == frames[1].shape == (50, 128, 256, 3)
    assert np.array_equal(frames[0], frames[1])  # on the CPU every lever that could change numbers is off


def test_a_failing_compile_falls_back_to_eager_with_one_log_line(tiny_root, tmp_path, caplog):
    """torch.compile fails at the first pass (here: a backend that raises, as inductor does without a C compiler):
    the clip still comes out, the blocks run eager from then on, and the lever table says why."""
    import logging

    from ltx_runtime import speed

    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", speed_options=SpeedOptions.plain())
    components = engine.load("ltx-runtime:tiny@1")

    def failing_backend(graph, example_inputs):
        raise RuntimeError("no C compiler for Triton (forced in a test)")

    for block in components.pipeline.transformer.transformer_blocks:
        block.compile(backend=failing_backend)
    request = GenerationRequest(model="ltx-runtime:tiny@1", prompt="a lighthouse", width=128, height=64, duration=1,
                                fps=8, audio=False, seed=1)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ltx_runtime.engine"):
        result = engine.generate(request, tmp_path / "clip.mp4")
    assert result.path.exists()
    assert [record.message for record in caplog.records if "torch.compile failed" in record.message][:1]
    assert len([record for record in caplog.records if "torch.compile failed" in record.message]) == 1
    assert engine.levers[components.folder]["compile"].startswith("off (compilation failed, eager instead")
    assert not speed.uncompile(components.pipeline.transformer)  # nothing left compiled
    engine.generate(request, tmp_path / "again.mp4")  # the next clip runs eager without trying again


def test_compile_stays_off_without_a_c_compiler(monkeypatch):
    from ltx_runtime import speed

    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert "no C compiler for Triton" in speed.missing_compiler()
    monkeypatch.delenv("CC")
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert speed.missing_compiler() == "no C compiler for Triton (looked for cc, gcc, clang)"


def test_dropping_an_all_ones_prompt_mask_changes_nothing(tiny_root):
    """The unmasked path equals the masked one: one transformer pass of the tiny model with an all-ones prompt mask,
    as it comes, and with the hook that drops it."""
    import torch

    from ltx_runtime.speed import DropAllOnesMasks

    transformer = Engine("tiny", tiny_folder=tiny_root, lock={}).load("ltx-runtime:tiny@1").pipeline.transformer
    config = transformer.config
    generator = torch.Generator().manual_seed(0)
    frames, height, width, audio_frames, text = 2, 4, 6, 5, 16
    text_dims = config.caption_channels if config.use_prompt_embeddings else config.cross_attention_dim
    audio_dims = config.caption_channels if config.use_prompt_embeddings else config.audio_cross_attention_dim
    inputs = dict(
        hidden_states=torch.randn(1, frames * height * width, config.in_channels, generator=generator),
        audio_hidden_states=torch.randn(1, audio_frames, config.audio_in_channels, generator=generator),
        encoder_hidden_states=torch.randn(1, text, text_dims, generator=generator),
        audio_encoder_hidden_states=torch.randn(1, text, audio_dims, generator=generator),
        timestep=torch.tensor([500.0]), audio_timestep=torch.tensor([500.0]), sigma=torch.tensor([0.5]),
        encoder_attention_mask=torch.ones(1, text), audio_encoder_attention_mask=torch.ones(1, text),
        num_frames=frames, height=height, width=width, fps=25.0, audio_num_frames=audio_frames, return_dict=False,
    )  # fmt: skip
    seen = {}
    hook = DropAllOnesMasks()
    with torch.no_grad():
        masked = transformer(**inputs)
        handle = transformer.register_forward_pre_hook(
            lambda module, args, kwargs: seen.update(kwargs) or hook(module, args, kwargs), with_kwargs=True
        )
        try:
            unmasked = transformer(**inputs)
        finally:
            handle.remove()
    assert seen["encoder_attention_mask"] is None and seen["audio_encoder_attention_mask"] is None
    for before, after in zip(masked, unmasked):
        torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    # A mask with a zero in it is a real mask and stays.
    partial = inputs["encoder_attention_mask"].clone()
    partial[0, -1] = 0
    _, kwargs = hook(transformer, (), {"encoder_attention_mask": partial})
    assert kwargs["encoder_attention_mask"] is partial


def test_every_new_lever_reports_off_with_its_reason_on_the_cpu(tiny_root, tmp_path):
    options = SpeedOptions(fp8_attention="on", cuda_graphs="on", vae_compile="on", compile="on", vae_tiles="on",
                           gpu_colour="on")  # fmt: skip
    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", speed_options=options)
    levers = engine.levers[engine.load("ltx-runtime:tiny@1").folder]
    assert levers["fp8_attention"] == "off (FP8 attention needs a CUDA GPU of compute capability 8.9 or newer)"
    assert levers["cuda_graphs"] == "off (CUDA graphs need a CUDA GPU)"
    assert levers["vae_compile"] == "off (compilation is used on CUDA only)"
    assert levers["unmasked_cross_attention"] == "on (an all-ones prompt mask is dropped)"
    assert levers["vae_tiles"] == "off (larger tiles are planned against a GPU's memory budget)"
    assert levers["gpu_colour"] == "off (on the CPU ffmpeg's swscale converts to yuv420p about 10x faster than torch)"
    plain = SpeedOptions.plain()
    assert plain.unmasked_cross_attention == plain.vae_tiles == plain.gpu_colour == "off"
    # the clip decodes with the official tiles, and says so
    result = engine.generate(GenerationRequest(model="ltx-runtime:tiny@1", prompt="a fox", width=256, height=128,
                                               duration=1, fps=25, audio=False, seed=1), tmp_path / "clip.mp4")
    assert result.vae_tiles == "768 px tiles"


def test_the_engine_decodes_with_the_tiles_its_plan_picks(tiny_root, tmp_path):
    """The `vae_tiles` lever is off on the CPU; switched on here by hand with an H200's budget, the clip is decoded
    in whole frames with 160-frame tiles, which at this size (one 768 px tile, 5 latent frames) are the official
    decode: the same frames."""
    request = GenerationRequest(model="ltx-runtime:tiny@1", prompt="a fox", width=256, height=128, duration=1, fps=25,
                                audio=False, seed=1)  # fmt: skip
    official = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", memory_budget_gib=128.6)
    first = official.generate(request, tmp_path / "official.mp4")
    larger = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", memory_budget_gib=128.6)
    larger.levers[larger.load(request.model).folder]["vae_tiles"] = "per clip"
    second = larger.generate(request, tmp_path / "larger.mp4")
    assert (first.vae_tiles, second.vae_tiles) == ("768 px tiles", "whole frames, 160-frame temporal tiles")
    assert np.array_equal(read_frames(tmp_path / "official.mp4"), read_frames(tmp_path / "larger.mp4"))


def test_gpu_colour_is_on_by_default_on_cuda(tiny_root):
    """The decision itself, with CUDA named as the device (the other levers of `plain` touch no GPU to decide)."""
    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast")
    components = engine.load("ltx-runtime:tiny@1")
    cuda = torch.device("cuda")
    levers = speed.apply(components, replace(SpeedOptions.plain(), gpu_colour="auto"), cuda)
    assert levers["gpu_colour"] == "on (RGB -> yuv420p on the GPU; ffmpeg encodes without converting)"
    assert speed.apply(components, SpeedOptions.plain(), cuda)["gpu_colour"] == "off"


def test_the_gpu_colour_path_encodes_yuv420p_and_still_shows_rgb_to_the_observer(engine, tmp_path, monkeypatch):
    """Switched on by hand (the torch conversion runs on any device): the decode makes yuv420p for ffmpeg, and RGB
    only while an observer looks; the file is the rgb24 path's (the CPU default) within a level of conversion and
    the encoder's loss, with the same size, frames and colour tags."""
    clip = request(width=64, height=64, duration=1, fps=8, audio=False, seed=5)
    seen_on_rgb24 = []
    reference = engine.generate(clip, tmp_path / "rgb24.mp4", frame_observer=lambda chunk, _: seen_on_rgb24.append(chunk))
    monkeypatch.setitem(engine.levers[engine.load(clip.model).folder], "gpu_colour", "on (by hand)")
    asked, real = [], decode.video_frames
    monkeypatch.setattr(decode, "video_frames", lambda *a, **kw: asked.append(kw) or real(*a, **kw))
    seen = []
    observed = engine.generate(clip, tmp_path / "observed.mp4", frame_observer=lambda chunk, _: seen.append(chunk))
    unobserved = engine.generate(clip, tmp_path / "unobserved.mp4")
    asked = [{key: kw[key] for key in ("rgb", "yuv420p")} for kw in asked]  # (the decoder's own arguments aside)
    assert asked == [dict(rgb=True, yuv420p=True), dict(rgb=False, yuv420p=True)]
    assert all(chunk.dtype == np.uint8 and chunk.shape[1:] == (64, 64, 3) for chunk in seen)
    assert np.array_equal(np.concatenate(seen), np.concatenate(seen_on_rgb24))  # the same RGB frames, 8 of them
    assert sum(len(chunk) for chunk in seen) == 8
    frames = {path.stem: read_frames(path) for path in (observed.path, unobserved.path, reference.path)}
    assert np.array_equal(frames["observed"], frames["unobserved"])
    for path in (observed.path, reference.path):
        info = probe(path)
        assert (info.width, info.height, info.frames, info.pix_fmt) == (64, 64, 8, "yuv420p")
    assert colour_tags(observed.path) == colour_tags(reference.path)
    mse = np.mean((frames["observed"].astype(float) - frames["rgb24"].astype(float)) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 40


def test_each_levers_setting_reaches_the_engine_by_its_name(monkeypatch):
    from server.settings import Settings

    asked = dict(attention="cudnn", compile="off", fp8_matmul="on", vae_tile_frames=40, prompt_cache=3,
                 unmasked_cross_attention="off", fp8_attention="on", cuda_graphs="on", vae_compile="on",
                 vae_tiles="off", gpu_colour="on")  # fmt: skip
    assert set(asked) == {option.name for option in dataclasses.fields(SpeedOptions)}, "a lever without a setting"
    assert all(getattr(SpeedOptions(), name) != value for name, value in asked.items())  # none is the default
    for name, value in asked.items():
        monkeypatch.setenv(f"LTX_{name.upper()}", str(value))
    assert Settings().speed_options == SpeedOptions(**asked)
