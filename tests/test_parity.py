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


def _random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


INPUTS = {
    "upsampler.latent": _random(1, 128, 3, 2, 4, seed=1),
    "vae_decode.latent": _random(1, 128, 3, 2, 4, seed=2),
    "audio_decode.latent": _random(1, 8, 17, 16, seed=3),
}
"""Each task's inputs: 64x128 pixels and 17 frames (latents 3x2x4), 17 audio latent frames (0.68 s)."""


@pytest.fixture(scope="module")
def theirs(official_root, tmp_path_factory) -> dict[str, dict[str, torch.Tensor]]:
    """Every oracle task's outputs, from one run of the official code: {task: {name: tensor}}."""
    if not ORACLE.is_file():
        pytest.fail(f"no oracle venv at {ORACLE}: run scripts/install.sh --test (it creates .venv-oracle)")
    folder = tmp_path_factory.mktemp("oracle")
    source, target = folder / "in.safetensors", folder / "out.safetensors"
    save_file(INPUTS, str(source))
    tasks = ["upsampler", "vae_decode", "audio_decode", "schedules"]
    result = subprocess.run([str(ORACLE), str(ROOT / "tests" / "parity" / "oracle.py"), str(official_root),
                             str(source), str(target), *tasks], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outputs: dict[str, dict[str, torch.Tensor]] = {task: {} for task in tasks}
    for key, value in load_file(str(target)).items():
        task, name = key.split(".", 1)
        outputs[task][name] = value
    return outputs


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    difference = (a.float() - b.float()).abs().max().item()
    print(f"max |ours - official| = {difference:.3g}")  # the figures in docs/fidelity.md (pytest -s)
    return difference


def test_the_latent_upsampler_matches(ours, theirs):
    with torch.inference_mode():
        mine = ours[1](INPUTS["upsampler.latent"])
    assert mine.shape == (1, 128, 3, 4, 8)
    assert max_difference(mine, theirs["upsampler"]["latent"]) < FLOAT32_TOLERANCE


def test_the_video_decoder_matches(ours, theirs):
    """Official: normalised latents in, the decoder un-normalises; ours: the pipeline un-normalises, then the VAE."""
    pipeline, latent, theirs = ours[0], INPUTS["vae_decode.latent"], theirs["vae_decode"]
    vae = pipeline.vae
    raw = latent * vae.latents_std.view(1, -1, 1, 1, 1) + vae.latents_mean.view(1, -1, 1, 1, 1)
    with torch.inference_mode():
        decoded = vae.decode(raw, return_dict=False)[0]
    assert decoded.shape == (1, 3, 17, 64, 128)
    assert max_difference(decoded, theirs["decoded"]) < FLOAT32_TOLERANCE
    frames = (((decoded + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    # uint8 truncation can flip a value sitting on an integer boundary by one step, nothing more
    assert max_difference(frames, theirs["frames"]) <= 1


def test_the_audio_decoder_and_vocoder_match(ours, theirs):
    pipeline, latent, theirs = ours[0], INPUTS["audio_decode.latent"], theirs["audio_decode"]
    audio_vae = pipeline.audio_vae
    patched = latent.permute(0, 2, 1, 3).flatten(2)  # b c t f -> b t (c f), as both implementations normalise
    raw = (patched * audio_vae.latents_std + audio_vae.latents_mean).unflatten(2, (8, 16)).permute(0, 2, 1, 3)
    with torch.inference_mode():
        mel = audio_vae.decode(raw, return_dict=False)[0]
        waveform = pipeline.vocoder(mel)
    assert max_difference(mel, theirs["mel"]) < FLOAT32_TOLERANCE
    assert waveform.shape[-1] == (1 + 16 * 4) * 240  # causal: 17 latent frames -> 65 mel frames -> 240 samples each
    assert max_difference(waveform, theirs["waveform"]) < FLOAT32_TOLERANCE


def test_the_fast_recipe_uses_the_official_distilled_sigmas(theirs):
    """Fast runs diffusers' published constants unshifted (recipes/fast.py); with the final 0 the scheduler appends,
    they must be ltx-pipelines' own."""
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

    official_schedules = theirs["schedules"]
    assert max_difference(torch.tensor([*DISTILLED_SIGMA_VALUES, 0.0], dtype=torch.float64),
                          official_schedules["distilled_stage_1"]) < 1e-7  # fmt: skip
    assert max_difference(torch.tensor([*STAGE_2_DISTILLED_SIGMA_VALUES, 0.0], dtype=torch.float64),
                          official_schedules["distilled_stage_2"]) < 1e-7  # fmt: skip


@pytest.mark.parametrize("steps", [40, 30])
def test_the_official_guided_schedule_is_the_documented_formula(theirs, steps):
    """TI2VidTwoStagesPipeline's stage-1 sigmas (LTX2Scheduler without a latent: the 2.05 shift at every size,
    stretched to 0.1) are the formula of ltx2-models.md section 2a item 1, which the guided recipes must use.
    float32 on the official side (LTX2Scheduler computes in float32): 1e-6."""
    sigmas = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    shift = torch.exp(torch.tensor(2.05, dtype=torch.float64))
    shifted = torch.where(sigmas > 0, shift / (shift + 1 / sigmas.clamp_min(1e-12) - 1), sigmas)
    last = shifted[-2]
    stretched = torch.where(shifted > 0, 1 - (1 - shifted) / ((1 - last) / 0.9), shifted)
    assert max_difference(stretched, theirs["schedules"][f"guided_{steps}"]) < 1e-6
