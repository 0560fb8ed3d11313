"""Lightricks' single-file format: key maps, loading, and `generate --weights DIR` on an official-layout folder."""

from __future__ import annotations

import json
import re
import shutil
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


def rewrite_checkpoints(root, rewrite) -> None:
    """Rewrite both main checkpoints of an official-layout folder: `rewrite(tensors, config)` edits them in place."""
    from safetensors.torch import load_file, save_file

    for path in (root / official.CHECKPOINTS).glob("*.safetensors"):
        with safe_open(str(path), "pt") as file:
            config = json.loads(file.metadata()["config"])
        tensors = load_file(str(path))
        rewrite(tensors, config)
        save_file(tensors, str(path), metadata={"config": json.dumps(config)})


def test_statistics_stored_once_per_vae_load(official_root, tmp_path):
    """Lightricks' released files keep each VAE's latent statistics once, as `vae.per_channel_statistics.*` and
    `audio_vae.per_channel_statistics.*` (what ltx-core's key filters and diffusers' checkpoint detection look for);
    ltx-core also accepts them inside each half, as `build_tiny_official` writes them. Both load, to the same values.
    Until #26 the shared naming raised KeyError."""
    root = tmp_path / "shared-statistics"
    shutil.copytree(official_root, root)

    def share_statistics(tensors, config):
        for key in [key for key in tensors if ".per_channel_statistics." in key]:
            vae, half, rest = key.split(".", 2)
            value = tensors.pop(key)
            if half == "encoder":
                tensors[f"{vae}.{rest}"] = value

    rewrite_checkpoints(root, share_statistics)
    (checkpoint,) = (root / official.CHECKPOINTS).glob("*-distilled.safetensors")
    with safe_open(str(checkpoint), "pt") as file:
        keys = set(file.keys())
    assert {"vae.per_channel_statistics.mean-of-means", "audio_vae.per_channel_statistics.std-of-means"} <= keys
    assert not any(".encoder.per_channel_statistics." in key or ".decoder.per_channel_statistics." in key for key in keys)
    shared, _, _ = official.load_official(root, dev=False, dtype=torch.float32)
    halves, _, _ = official.load_official(official_root, dev=False, dtype=torch.float32)
    for vae in ("vae", "audio_vae"):
        for name in ("latents_mean", "latents_std"):
            mine, theirs = getattr(getattr(shared, vae), name), getattr(getattr(halves, vae), name)
            assert torch.equal(mine, theirs) and mine.abs().sum() > 0, (vae, name)


def test_a_video_vae_whose_blocks_do_not_alternate_keeps_the_official_block_numbers(tmp_path, monkeypatch):
    """ltx-core numbers a VAE's blocks in its config's order. An encoder with two compressions in a row (no res_x
    between them) has no res blocks at that place: diffusers gets a down block of 0 layers, and every official name
    keeps its block's index. Until #26 the key map assumed res_x and compressions alternate."""
    config = official.tiny_official_config

    def with_two_compressions_in_a_row(architecture, gemma_hidden):
        values = config(architecture, gemma_hidden)
        blocks = values["vae"]["encoder_blocks"]
        values["vae"]["encoder_blocks"] = [block for index, block in enumerate(blocks) if index != 2]  # a res_x
        return values

    monkeypatch.setattr(official, "tiny_official_config", with_two_compressions_in_a_row)
    root = official.build_tiny_official(tmp_path / "ltx-2")
    (checkpoint,) = (root / official.CHECKPOINTS).glob("*-distilled.safetensors")
    with safe_open(str(checkpoint), "pt") as file:
        blocks = json.loads(file.metadata()["config"])["vae"]["encoder_blocks"]
        stored = {}
        for key in file.keys():
            match = re.match(r"vae\.encoder\.down_blocks\.(\d+)\.(\w+)", key)
            if match:
                stored.setdefault(int(match[1]), set()).add(match[2])
    assert [name for name, _ in blocks][:3] == ["res_x", "compress_space_res", "compress_time_res"]
    assert sorted(stored) == list(range(len(blocks)))
    for index, (name, _) in enumerate(blocks):
        assert ("res_blocks" in stored[index]) == (name == "res_x"), (index, name, stored[index])
    pipeline, _, _ = official.load_official(root, dev=False, dtype=torch.float32)
    assert pipeline.vae.config.layers_per_block == (1, 0, 1, 1, 1)
    with torch.inference_mode():
        latents = pipeline.vae.encode(torch.zeros(1, 3, 9, 64, 64)).latent_dist.mode()
    assert latents.shape == (1, 128, 2, 2, 2)


def test_any_load_failure_is_the_loaders_error(official_root, tmp_path):
    """A checkpoint whose config is malformed in a way nothing checks for (an empty list where the positional
    embedding's extents belong: IndexError) is refused with the loader's error naming the folder, not a traceback."""
    from ltx_runtime.weights import load_components

    root = tmp_path / "malformed"
    shutil.copytree(official_root, root)
    rewrite_checkpoints(root, lambda tensors, config: config["transformer"].update(positional_embedding_max_pos=[]))
    with pytest.raises(WeightsError, match=f"cannot load the weights in {root}: IndexError"):
        load_components(root, get_model("ltx-runtime:tiny@1"), torch.float32)
