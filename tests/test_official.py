"""Lightricks' single-file format: key maps, loading, and `generate --weights DIR` on an official-layout folder."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from ltx_runtime import official
from ltx_runtime.catalog import get_model
from ltx_runtime.weights import WeightsError, check_folder


@pytest.fixture(scope="module")
def official_root(tmp_path_factory):
    return official.build_tiny_official(tmp_path_factory.mktemp("official") / "ltx-2")


def test_our_key_map_inverts_diffusers_own_single_file_conversion(official_root):
    """diffusers' single-file maps (transformer, video VAE, audio VAE) read our files back to the same names."""
    from diffusers.loaders.single_file_utils import (
        convert_ltx2_audio_vae_to_diffusers,
        convert_ltx2_transformer_to_diffusers,
        convert_ltx2_vae_to_diffusers,
    )

    (checkpoint,) = (official_root / official.CHECKPOINTS).glob("*-distilled.safetensors")
    with safe_open(str(checkpoint), "pt") as file:
        keys = list(file.keys())
    pipeline, _, _ = official.load_official(official_root, dev=False, dtype=torch.float32)
    cases = [("model.diffusion_model.", convert_ltx2_transformer_to_diffusers, pipeline.transformer),
             ("vae.", convert_ltx2_vae_to_diffusers, pipeline.vae),
             ("audio_vae.", convert_ltx2_audio_vae_to_diffusers, pipeline.audio_vae)]  # fmt: skip
    for prefix, convert, module in cases:
        subset = {key: None for key in keys if key.startswith(prefix) and "embeddings_connector" not in key}
        converted = set(convert(subset))
        # the official files keep the latent statistics in both VAE halves; diffusers folds the two copies into one
        converted = {key.replace("encoder.latents_", "latents_").replace("decoder.latents_", "latents_") for key in converted}
        assert converted == set(module.state_dict()), prefix


def test_loaded_components_hold_the_written_tensors(official_root):
    pipeline, upsampler, lora = official.load_official(official_root, dev=True, dtype=torch.float32)
    assert lora is not None and lora.name == "ltx-2-19b-distilled-lora-384.safetensors"
    (checkpoint,) = (official_root / official.CHECKPOINTS).glob("*-dev.safetensors")
    with safe_open(str(checkpoint), "pt") as file:
        patchify = file.get_tensor("model.diffusion_model.patchify_proj.weight")
        vocoder = file.get_tensor("vocoder.conv_pre.weight")
    assert torch.equal(pipeline.transformer.proj_in.weight, patchify.float())
    assert torch.equal(pipeline.vocoder.conv_in.weight, vocoder.float())
    assert pipeline.transformer.config.perturbed_attn  # STG works on LTX-2.0 too (ltx2-models.md 2a item 2)
    assert upsampler.config.in_channels == pipeline.transformer.config.in_channels == 128


def test_a_folder_without_its_distilled_checkpoint_is_refused_by_name(official_root, tmp_path):
    folder = tmp_path / "partial"
    (folder / official.CHECKPOINTS).mkdir(parents=True)
    with pytest.raises(WeightsError, match="distilled checkpoint"):
        check_folder(folder, get_model("ltx-runtime:tiny@1"))
    check_folder(official_root, get_model("ltx-runtime:tiny@1"))
    check_folder(official_root, get_model("ltx-runtime:tiny-pro@1"))


def test_generate_runs_on_an_official_layout_folder(official_root, tmp_path, prober):
    output = tmp_path / "clip.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "ltx_runtime", "generate", "-p", "a cat", "-o", str(output), "-m", "ltx-runtime:tiny@1",
         "--width", "128", "--height", "64", "--duration", "1", "--fps", "16", "--audio", "--seed", "3",
         "--weights", str(official_root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    facts = prober(output)
    assert (facts.width, facts.height, facts.frames, facts.fps) == (128, 64, 16, 16)
    assert (facts.audio_codec, facts.audio_rate, facts.audio_channels) == ("aac", 24000, 2)
    assert abs(facts.audio_duration - 1.0) < 0.05


def test_an_ltx23_folder_loads_with_the_bandwidth_extension_vocoder_in_float32(tmp_path):
    root = official.build_tiny_official(tmp_path / "ltx-2.3", "ltx-2.3")
    spec = get_model("ltx-runtime:tiny-ltx23@1")
    check_folder(root, spec)
    pipeline, _, lora = official.load_official(root, dev=True, dtype=torch.bfloat16)
    assert type(pipeline.vocoder).__name__ == "LTX2VocoderWithBWE"
    assert pipeline.vocoder.config.output_sampling_rate == spec.audio_sample_rate == 48000
    assert pipeline.vocoder.vocoder.conv_in.weight.dtype == torch.float32  # ltx2-models.md 2a item 4
    assert pipeline.transformer.dtype == torch.bfloat16
    assert pipeline.transformer.config.gated_attn and not pipeline.transformer.config.use_prompt_embeddings
    assert lora.name == "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"
