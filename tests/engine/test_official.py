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


def generate_on(folder, model: str, fps: int, output, timeout: float):
    """`ltx-runtime generate --weights FOLDER` as a user runs it: a 1 s clip of 128x64 with audio; exit 0 asserted."""
    result = subprocess.run(
        [sys.executable, "-m", "ltx_runtime", "generate", "-p", "a cat", "-o", str(output), "-m", model, "--width",
         "128", "--height", "64", "--duration", "1", "--fps", str(fps), "--audio", "--seed", "3", "--weights",
         str(folder)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_generate_runs_on_an_official_layout_folder(official_root, tmp_path, prober):
    output = tmp_path / "clip.mp4"
    generate_on(official_root, "ltx-runtime:tiny@1", 16, output, timeout=300)
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


# --- LTX-2.5: the split files ----------------------------------------------------------------------------------------


def test_ltx25_split_files_have_the_official_layout_and_metadata(tmp_path):
    """`weights build-tiny --format official --architecture ltx-2.5`: one file per component under the folders
    ComfyUI and ltx-pipelines 1.2.0 use; the metadata ltx-core 1.2.0 reads (the transformer's `model_version` >= 2.5
    for the ancestral stage 1, `gemma_source_checkpoint`, the text encoder's `gemma_config`)."""
    result = subprocess.run([sys.executable, "-m", "ltx_runtime", "weights", "build-tiny", str(tmp_path / "ltx-2.5"),
                             "--architecture", "ltx-2.5", "--format", "official"], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    root = tmp_path / "ltx-2.5"
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*.safetensors"))
    assert files == sorted(official.SPLIT_FILES.values())
    with safe_open(str(root / official.SPLIT_FILES["distilled"]), "pt") as file:
        metadata, keys = file.metadata(), set(file.keys())
    transformer = json.loads(metadata["config"])["transformer"]
    assert metadata["model_version"].startswith("2.5")
    assert json.loads(metadata["gemma_source_checkpoint"]) == {"gemma_version": "gemma4-12b-ltx-v1"}
    assert (transformer["ff_bias"], transformer["audio_ff_bias"], transformer["use_keyframes_abs_pos_embedding"]) == (
        False, True, True)  # fmt: skip
    assert "model.diffusion_model.keyframes_abs_pos_embedding" in keys
    blocks = [key for key in keys if key.startswith("model.diffusion_model.transformer_blocks.")]
    assert not any(".ff." in key and key.endswith(".bias") for key in blocks)  # the video FFN: no biases
    assert any(".audio_ff." in key and key.endswith(".bias") for key in blocks)
    assert all(key.startswith("model.diffusion_model.") for key in keys)  # the connectors too
    with safe_open(str(root / official.SPLIT_FILES["text_encoder"]), "pt") as file:
        gemma = json.loads(file.metadata()["gemma_config"])
        keys = set(file.keys())
    assert gemma["model_type"] == "gemma4_unified" and gemma["gemma_version"] == "gemma4-12b-ltx-v1"
    assert "per_layer_config" not in gemma["text_config"] and gemma["text_config"]["global_head_dim"] == 16
    assert {"tokenizer_json", "hf_asset__tokenizer_config.json", "hf_asset__processor_config.json"} <= keys
    assert "model.layers.0.post_feedforward_layernorm.weight" in keys  # ComfyUI's flat LM layout
    assert any(key.startswith("text_embedding_projection.video_aggregate_embed.") for key in keys)
    with safe_open(str(root / official.SPLIT_FILES["duration_head"]), "pt") as file:
        assert "duration_head.attention_pooler.cross_attn.in_proj_weight" in set(file.keys())


@pytest.fixture(scope="module")
def ltx25_root(tmp_path_factory):
    return official.build_tiny_official(tmp_path_factory.mktemp("official") / "ltx-2.5", "ltx-2.5")


@pytest.mark.parametrize("model, lora", [("lightricks:ltx@2.5-fast", False), ("lightricks:ltx@2.5-pro", True)])
def test_a_split_folder_loads_as_the_2_5_components(ltx25_root, model, lora):
    from diffusers.pipelines.ltx2 import LTX2DurationHead
    from transformers import Gemma4UnifiedForConditionalGeneration

    spec = get_model(model)
    check_folder(ltx25_root, spec)
    pipeline, _, lora_file = official.load_official(ltx25_root, dev=spec.needs_distilled_lora, dtype=torch.float32)
    assert isinstance(pipeline.text_encoder, Gemma4UnifiedForConditionalGeneration)
    assert isinstance(pipeline.duration_head, LTX2DurationHead)
    assert pipeline.transformer.config.ff_bias is False and pipeline.transformer.config.use_keyframes_abs_pos_embedding
    assert pipeline.vocoder.config.output_sampling_rate == 48000
    assert (lora_file is not None) == lora


def test_a_split_folder_missing_its_duration_head_or_with_stock_gemma_is_refused(ltx25_root, tmp_path):
    spec = get_model("lightricks:ltx@2.5-fast")
    folder = tmp_path / "partial"
    shutil.copytree(ltx25_root, folder)
    (folder / official.SPLIT_FILES["duration_head"]).unlink()
    with pytest.raises(WeightsError, match="duration head"):
        check_folder(folder, spec)
    shutil.copytree(ltx25_root / "model_patches", folder / "model_patches", dirs_exist_ok=True)
    from safetensors.torch import load_file, save_file

    path = folder / official.SPLIT_FILES["text_encoder"]
    with safe_open(str(path), "pt") as file:
        metadata = file.metadata()
    gemma = json.loads(metadata["gemma_config"])
    del gemma["gemma_version"]  # stock Gemma 4 carries no fine-tune stamp
    save_file(load_file(str(path)), str(path), metadata={**metadata, "gemma_config": json.dumps(gemma)})
    with pytest.raises(ValueError, match="gemma4-12b-ltx-v1"):
        official.load_official(folder, dev=False, dtype=torch.float32)


def test_generate_runs_on_a_2_5_split_folder(ltx25_root, tmp_path, prober):
    """build-tiny official 2.5 -> `generate --weights DIR` (the same loader) -> the clip probed."""
    output = tmp_path / "clip.mp4"
    generate_on(ltx25_root, "ltx-runtime:tiny-ltx25@1", 24, output, timeout=600)
    facts = prober(output)
    assert (facts.width, facts.height, facts.frames, facts.fps) == (128, 64, 24, 24)
    assert (facts.audio_codec, facts.audio_rate, facts.audio_channels) == ("aac", 48000, 2)
    assert abs(facts.audio_duration - 1.0) < 0.05
