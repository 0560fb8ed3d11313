"""Parity with Lightricks' official implementation (ltx-core / ltx-pipelines 1.0.0 from PyPI) on tiny random weights.

Both sides load the same files: tiny weights written by `build_tiny_official` in Lightricks' single-file format (bf16,
as Lightricks ships them). The official code runs in its own venv (tests/parity/oracle.py; .venv-oracle is made by
scripts/install.sh --test, LTX_ORACLE_PYTHON overrides it) and tensors cross through safetensors files, so this
process never imports ltx-core. Both sides compute in float32 on the CPU: the tolerances below only have to absorb
float32 summation-order differences between two implementations of the same layers (measured maxima in
docs/fidelity.md), not bf16 rounding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ltx_runtime import official

ROOT = Path(__file__).resolve().parent.parent
ORACLE = Path(os.environ.get("LTX_ORACLE_PYTHON", ROOT / ".venv-oracle" / "bin" / "python"))
FLOAT32_TOLERANCE = 1e-4
"""Absolute, on outputs of order 1: float32 with different kernel orders differs by ~1e-6 per op; 1e-4 leaves room
for a few dozen layers and still fails on any wrong weight, key or formula."""


@pytest.fixture(scope="module")
def official_root(tmp_path_factory):
    return official.build_tiny_official(tmp_path_factory.mktemp("official") / "ltx-2")


@pytest.fixture(scope="module")
def ours(official_root):
    pipeline, upsampler, _ = official.load_official(official_root, dev=False, dtype=torch.float32)
    return pipeline, upsampler


def run_oracle(task: str, root: Path, inputs: dict[str, torch.Tensor], tmp_path: Path) -> dict[str, torch.Tensor]:
    if not ORACLE.is_file():
        pytest.fail(f"no oracle venv at {ORACLE}: run scripts/install.sh --test (it creates .venv-oracle)")
    source, target = tmp_path / f"{task}-in.safetensors", tmp_path / f"{task}-out.safetensors"
    save_file({key: value.contiguous() for key, value in inputs.items()}, str(source))
    result = subprocess.run([str(ORACLE), str(ROOT / "tests" / "parity" / "oracle.py"), task, str(root), str(source),
                             str(target)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return load_file(str(target))


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    difference = (a.float() - b.float()).abs().max().item()
    print(f"max |ours - official| = {difference:.3g}")  # the figures in docs/fidelity.md (pytest -s)
    return difference


def test_the_latent_upsampler_matches(official_root, ours, tmp_path):
    latent = torch.randn(1, 128, 3, 2, 4, generator=torch.Generator().manual_seed(1))
    theirs = run_oracle("upsampler", official_root, {"latent": latent}, tmp_path)["latent"]
    with torch.inference_mode():
        mine = ours[1](latent)
    assert mine.shape == (1, 128, 3, 4, 8)
    assert max_difference(mine, theirs) < FLOAT32_TOLERANCE


def test_the_video_decoder_matches(official_root, ours, tmp_path):
    """Official: normalised latents in, the decoder un-normalises; ours: the pipeline un-normalises, then the VAE."""
    pipeline = ours[0]
    latent = torch.randn(1, 128, 3, 2, 4, generator=torch.Generator().manual_seed(2))
    theirs = run_oracle("vae_decode", official_root, {"latent": latent}, tmp_path)
    vae = pipeline.vae
    raw = latent * vae.latents_std.view(1, -1, 1, 1, 1) + vae.latents_mean.view(1, -1, 1, 1, 1)
    with torch.inference_mode():
        decoded = vae.decode(raw, return_dict=False)[0]
    assert decoded.shape == (1, 3, 17, 64, 128)
    assert max_difference(decoded, theirs["decoded"]) < FLOAT32_TOLERANCE
    frames = (((decoded + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    # uint8 truncation can flip a value sitting on an integer boundary by one step, nothing more
    assert max_difference(frames, theirs["frames"]) <= 1


def test_the_audio_decoder_and_vocoder_match(official_root, ours, tmp_path):
    pipeline = ours[0]
    latent = torch.randn(1, 8, 17, 16, generator=torch.Generator().manual_seed(3))
    theirs = run_oracle("audio_decode", official_root, {"latent": latent}, tmp_path)
    audio_vae = pipeline.audio_vae
    patched = latent.permute(0, 2, 1, 3).flatten(2)  # b c t f -> b t (c f), as both implementations normalise
    raw = (patched * audio_vae.latents_std + audio_vae.latents_mean).unflatten(2, (8, 16)).permute(0, 2, 1, 3)
    with torch.inference_mode():
        mel = audio_vae.decode(raw, return_dict=False)[0]
        waveform = pipeline.vocoder(mel)
    assert max_difference(mel, theirs["mel"]) < FLOAT32_TOLERANCE
    assert waveform.shape[-1] == (1 + 16 * 4) * 240  # causal: 17 latent frames -> 65 mel frames -> 240 samples each
    assert max_difference(waveform, theirs["waveform"]) < FLOAT32_TOLERANCE
