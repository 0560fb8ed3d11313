"""The speed levers on the CPU: each falls back to off (a warning when asked for explicitly), the VAE tile setting
and the prompt cache work, and the optimized path renders the same clip as plain diffusers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import read_frames

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
