"""The benchmark harness: `ltx-runtime bench` end to end on the CPU with tiny weights (the code path a GPU run takes,
minus the GPU), its arithmetic and Markdown on a hand-made result, the quality guard on real files, and the random
distilled LoRA on the full-size architecture (meta device: shapes only). No speed is asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ltx_runtime import media
from ltx_runtime.bench import (
    AUDIO_THRESHOLD,
    PSNR_THRESHOLD_DB,
    STAGES,
    BenchError,
    BenchOptions,
    guard,
    random_components,
    render_markdown,
    run_bench,
    speedups,
    stage_times,
    summarize,
)

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="what a machine without CUDA refuses")


@pytest.mark.slow
def test_bench_end_to_end_on_tiny_weights(tiny_root, tmp_path):
    out_json, out_markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    command = [sys.executable, "-m", "ltx_runtime", "bench", "--weights", "tiny", "--model", "ltx-runtime:tiny@1",
               "--width", "256", "--height", "128", "--duration", "2", "--fps", "25", "--audio", "--repeats", "1",
               "--warmup", "0", "--json", str(out_json), "--markdown", str(out_markdown)]  # fmt: skip
    environment = dict(os.environ, LTX_TINY_DIR=str(tiny_root))
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr

    result = json.loads(out_json.read_text())
    assert "CPU" in result["measured_on"] and "not a performance figure" in result["measured_on"]
    assert result["command"].startswith("ltx-runtime bench --weights tiny")
    for package in ("python", "torch", "diffusers", "transformers", "ffmpeg"):
        assert result["versions"][package]
    assert (result["warmup"], result["repeats"]) == (0, 1)
    [model] = result["models"]
    assert model["model"] == "ltx-runtime:tiny@1"
    plain, optimized = model["configs"]
    assert (plain["name"], optimized["name"]) == ("plain", "optimized")
    for config in (plain, optimized):
        assert list(config["stages"]) == list(STAGES)
        for stats in config["stages"].values():
            assert stats["median"] > 0 and len(stats["runs"]) == 1
        assert config["peak_memory_gib"] > 0
        assert set(config["speedup_vs_plain"]) == set(STAGES)
    # On a CPU every GPU lever reports why it stayed off; fp8 matmuls are off unless asked for; the prompt cache is
    # the optimized path's own.
    for lever in ("attention", "compile"):
        assert optimized["levers"][lever].startswith("off (")
    assert optimized["levers"]["fp8_matmul"] == "off"
    assert plain["levers"]["prompt_cache"] == "0" and optimized["levers"]["prompt_cache"] == "16"

    # The same kernels on the same weights, prompt and seed: the guard sees (nearly) the same clip.
    check = optimized["guard"]
    assert check["passed"]
    assert check["identical_frames"] or check["psnr_db"] >= PSNR_THRESHOLD_DB
    assert 0 <= check["audio_rel_l2"] <= AUDIO_THRESHOLD
    assert "guard" not in plain
    assert model["encoder_floor_db"] > 20 and model["reference_frame_std"] > 1  # the tiny clip is not flat

    markdown = out_markdown.read_text()
    assert markdown == completed.stdout
    assert "| stage | plain s | optimized s | speed-up plain / optimized |" in markdown
    for stage in STAGES:
        assert f"| {stage} | " in markdown
    assert "| optimized | " in markdown and "warm-up" in markdown


def test_stage_rows_split_the_engine_timings():
    timings = dict(text_encoding=1.0, stage_1=8.0, upsample=0.5, stage_2=6.0, audio_decode=0.7, vocoder=0.4,
                   vae_decode=2.0, to_uint8=0.2, encode_tail=0.1, decode_and_encode=3.5, total=20.0)  # fmt: skip
    rows = stage_times(timings)
    assert list(rows) == list(STAGES)
    assert rows["encoding beyond the decode"] == 0.1 and rows["frames to uint8"] == 0.2
    assert rows["audio VAE"] == pytest.approx(0.3)
    assert rows["vocoder"] == 0.4 and rows["end to end"] == 20.0
    del timings["audio_decode"], timings["vocoder"]
    assert "audio VAE" not in stage_times(timings) and "vocoder" not in stage_times(timings)


def test_medians_speedups_and_markdown_of_a_hand_made_result():
    plain = summarize([{"stage 2": 4.0, "end to end": 10.0}, {"stage 2": 6.0, "end to end": 12.0},
                       {"stage 2": 5.0, "end to end": 30.0}])  # fmt: skip
    assert plain["stage 2"] == {"median": 5.0, "min": 4.0, "max": 6.0, "runs": [4.0, 6.0, 5.0]}
    assert plain["end to end"]["median"] == 12.0  # a median, not a mean: the 30 s outlier does not move it
    fast = summarize([{"stage 2": 2.0, "end to end": 4.0}])
    assert speedups(plain, fast) == {"stage 2": 2.5, "end to end": 3.0}

    levers = {"attention": "native", "compile": "off"}
    result = {
        "command": "ltx-runtime bench", "measured_on": "a test", "device": "cuda", "dtype": "bfloat16",
        "versions": {"torch": "9.9", "torchao": None},
        "request": dict(width=1920, height=1080, duration=8, fps=25, audio=True, seed=1, output_format="mp4",
                        quality=95, weights="random"),
        "memory": {"profile": "low", "fraction": 0.17, "cap_gib": 23.8, "budget_gib": 21.9},
        "notes": ["a note"],
        "models": [{"model": "lightricks:2@1", "name": "LTX-2 Fast", "encoder_floor_db": 48.0,
                    "reference_frame_std": 61.0, "configs": [
            dict(name="plain", levers=levers, memory_profile="low", vae_tiles=["768 px tiles"], stages=plain,
                 peak_memory_gib=20.5,
                 setup_s=31.0, warmup_s=[14.0], retried_frugally=0, speedup_vs_plain=speedups(plain, plain)),
            dict(name="optimized", levers={"attention": "cudnn", "compile": "regional"}, memory_profile="low",
                 vae_tiles=["whole frames, 160-frame temporal tiles", "384 px tiles"],
                 stages=fast, peak_memory_gib=19.25, setup_s=35.0, warmup_s=[95.5], retried_frugally=1,
                 speedup_vs_plain=speedups(plain, fast),
                 guard=dict(psnr_db=41.23, identical_frames=False, psnr_threshold_db=35.0, audio_rel_l2=0.012,
                            audio_threshold=0.1, passed=True)),
        ], "failed": [{"name": "compile=on", "error": "RuntimeError: a broken kernel"}]}],
    }  # fmt: skip
    markdown = render_markdown(result)
    assert "| stage 2 | 5.000 (4.000-6.000) | 2.000 | 2.50x |" in markdown
    assert "| end to end | 12.000 (10.000-30.000) | 4.000 | 3.00x |" in markdown
    assert "| peak GPU memory GiB (max allocated) | 20.50 | 19.25 |  |" in markdown
    assert "| warm-up clips, not counted | 14.0 | 95.5 |  |" in markdown
    assert "| attention | native | cudnn |" in markdown and "| memory profile | low | low |" in markdown
    assert "| VAE tiles used | 768 px tiles | whole frames, 160-frame temporal tiles; 384 px tiles |" in markdown
    assert "| optimized | 41.2 dB | 0.0120 | >= 35 dB, <= 0.1 | yes |" in markdown
    assert "| setup: weights and levers, not counted | 31.0 | 35.0 |  |" in markdown
    assert "capped at 23.8 GiB" in markdown and "floor on this content: 48.0 dB" in markdown
    assert "standard deviation of 61.0" in markdown
    assert "retried frugally in some runs: optimized" in markdown
    assert "Failed, not measured: compile=on: RuntimeError: a broken kernel" in markdown
    assert "torchao" not in markdown  # not installed: left out of the versions line
    assert "text encoding" not in markdown  # only the stages the result has


def test_the_guard_passes_a_near_copy_and_fails_garbage(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 255, 128 * 64 * 3).reshape(1, 64, 128, 3).repeat(10, axis=0)
    clips = {
        "reference": smooth,
        "near": smooth + rng.normal(0, 1, smooth.shape),
        "garbage": rng.uniform(0, 255, smooth.shape),
    }
    tone = np.sin(np.arange(24000) / 24000 * 2 * np.pi * 440)[:, None].repeat(2, axis=1)
    sounds = {"reference": tone, "near": tone * 1.001, "garbage": rng.uniform(-1, 1, tone.shape)}
    for name, frames in clips.items():
        media.encode_clip([frames.round().clip(0, 255).astype(np.uint8)], sounds[name].astype(np.float32), width=128,
                          height=64, fps=10, sample_rate=24000, output_path=tmp_path / f"{name}.mp4",
                          output_format=media.OutputFormat.MP4)  # fmt: skip
    bf16 = {"fp8_matmul": "off"}
    same = guard(tmp_path / "reference.mp4", tmp_path / "reference.mp4", bf16)
    assert same["identical_frames"] and same["psnr_db"] is None and same["audio_rel_l2"] == 0 and same["passed"]
    near = guard(tmp_path / "reference.mp4", tmp_path / "near.mp4", bf16)
    assert near["passed"] and near["psnr_db"] >= 35 and near["audio_rel_l2"] < 0.01
    broken = guard(tmp_path / "reference.mp4", tmp_path / "garbage.mp4", {"fp8_matmul": "float8 e4m3"})
    assert broken["psnr_threshold_db"] == 25 and broken["psnr_db"] < 15 and broken["audio_rel_l2"] > 0.5
    assert not broken["passed"]


def test_the_random_distilled_lora_is_shaped_like_the_real_one():
    pipeline = random_components("ltx-2", True, torch.device("meta"), torch.bfloat16).pipeline
    assert pipeline.get_list_adapters() == {"transformer": ["distilled"]}
    feed_forward = pipeline.transformer.transformer_blocks[0].ff.net[2]
    assert feed_forward.lora_A["distilled"].weight.shape == (384, 16384)
    lora = sum(p.numel() for name, p in pipeline.transformer.named_parameters() if "lora_" in name)
    assert abs(lora * 2 - 7.67e9) / 7.67e9 < 0.05  # ltx-2-19b-distilled-lora-384.safetensors, bf16
    assert feed_forward.disable_adapters  # switched off until a guided recipe's stage 2


@NO_CUDA
@pytest.mark.parametrize(
    "options, message",
    [
        (BenchOptions(), "need a CUDA GPU"),
        (BenchOptions(weights="tiny", models=("ltx-runtime:tiny@1",), memory_fraction=0.2), "needs a CUDA GPU"),
    ],
)
def test_what_a_cpu_refuses_before_running_anything(options, message):
    with pytest.raises(BenchError, match=message):
        run_bench(options, command="test")


def test_bad_arguments_are_refused_before_running_anything():
    with pytest.raises(BenchError, match="unknown configuration"):
        run_bench(BenchOptions(weights="tiny", configs=("plain", "turbo")), command="test")
    with pytest.raises(BenchError, match="is not a size of lightricks:2@1"):
        run_bench(BenchOptions(weights="tiny", width=1280, height=720), command="test")
