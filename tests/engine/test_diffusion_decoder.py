"""LTX-2.5's diffusion video decoder (ltx_runtime/diffusion_decode.py): the tiled neighbourhood attention against
diffusers' own window, the diffusion VAE file in Lightricks' layout loaded into diffusers' class, clips through it,
and the `video_decoder` setting that picks the conv VAE instead."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import probe, read_frames
from ltx_runtime import decode, diffusion_decode, diffusion_vae, official
from ltx_runtime.catalog import get_model
from ltx_runtime.geometry import crop_frames, plan_generation
from ltx_runtime.request import GenerationRequest
from ltx_runtime.weights import WeightsError, check_folder

TINY_FAST = "ltx-runtime:tiny-ltx25@1"


@pytest.fixture(scope="module")
def diffusion_engine(tiny_root):
    """An engine that decodes LTX-2.5 with the diffusion decoder (the default `auto` picks it on GPUs only)."""
    from ltx_runtime.engine import Engine

    return Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", video_decoder="diffusion")


@pytest.fixture(scope="module")
def split_root(tmp_path_factory):
    return official.build_tiny_official(tmp_path_factory.mktemp("split") / "ltx-2.5", "ltx-2.5")


def test_the_tiled_attention_attends_diffusers_neighbourhood_windows(monkeypatch):
    """Against diffusers' flex processor (the window as a block mask, every score computed), with tiles of a few
    queries so that tile edges and grid borders (where the window shifts inward) both occur."""
    from diffusers import LTX2VideoDiffusionDecoderModel

    torch.manual_seed(0)
    decoder = LTX2VideoDiffusionDecoderModel(
        **diffusion_vae.diffusers_diffusion_decoder_config({"model_output_type": "x0", "decoder": {
            "in_channels": 128, **diffusion_vae.TINY_DIFFUSION_DECODER}})
    ).eval()  # fmt: skip
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.normal_(0.0, 0.2)
    latents = torch.randn(1, 128, 2, 2, 4)  # 9 frames: stage 5 holds 9 x 16 x 32 tokens, flex scores them all
    with torch.no_grad():
        flex = decoder.decode(latents, generator=torch.Generator().manual_seed(1)).sample
        diffusion_decode.prepare(decoder)
        monkeypatch.setattr(diffusion_decode, "GATHER_BUDGET", 100_000)
        tiled = decoder.decode(latents, generator=torch.Generator().manual_seed(1)).sample
    assert tiled.shape == flex.shape == (1, 3, 9, 64, 128)
    assert flex.abs().mean() > 0.05
    assert (tiled - flex).abs().max() < 1e-5


def test_the_diffusion_vae_file_has_the_official_layout_and_loads_into_diffusers(split_root):
    """`vae/ltx-2.5-video-vae-bf16.safetensors`: ltx-core 1.2.0's nested `CausalDiffusionVAE` config, the encoder
    beside the decoder, q/k/v fused as `qkv`, the reference's t_embedder names; loaded into diffusers'
    LTX2VideoDiffusionDecoderModel, each tensor the file's."""
    from diffusers import LTX2VideoDiffusionDecoderModel

    path = split_root / official.SPLIT_FILES["diffusion_vae"]
    with safe_open(str(path), "pt") as file:
        vae = json.loads(file.metadata()["config"])["vae"]
        keys = set(file.keys())
        qkv = file.get_tensor("vae.decoder.diff_blocks.0.attn.qkv.weight")
        embedder = file.get_tensor("vae.decoder.t_embedder.mlp.0.weight")
    assert vae["_class_name"] == "CausalDiffusionVAE" and vae["model_output_type"] == "x0"
    assert vae["decoder"]["default_num_inference_steps"] == 1 and len(vae["decoder"]["upsamples"]) == 4
    assert vae["encoder"]["out_channels"] == 128
    assert any(key.startswith("vae.encoder.") for key in keys)
    assert not any(".to_q." in key or ".to_out." in key or "timestep_embedder" in key for key in keys)
    decoder = official.load_diffusion_decoder(path, torch.float32)
    assert isinstance(decoder, LTX2VideoDiffusionDecoderModel)
    assert decoder.config.decoder_num_inference_steps == 1 and decoder.config.decoder_model_output_type == "x0"
    assert decoder.config.spatial_compression_ratio == 32 and decoder.config.temporal_compression_ratio == 8
    attention = decoder.decoder.diff_blocks[0].attn
    assert torch.equal(attention.to_k.weight, qkv.float()[qkv.shape[0] // 3 : 2 * qkv.shape[0] // 3])
    assert torch.equal(decoder.decoder.t_embedder.timestep_embedder.linear_1.weight, embedder.float())


def test_a_static_gate_in_the_file_is_folded_into_its_linear(split_root, tmp_path):
    """A standalone (distilled) diffusion VAE carries `gate_msa`: ltx-core folds it into `attn.proj`."""
    from safetensors.torch import load_file, save_file

    path = split_root / official.SPLIT_FILES["diffusion_vae"]
    with safe_open(str(path), "pt") as file:
        metadata = file.metadata()
    tensors = load_file(str(path))
    gate = torch.linspace(0.5, 2.0, tensors["vae.decoder.diff_blocks.0.attn.proj.bias"].shape[0])
    tensors["vae.decoder.diff_blocks.0.gate_msa"] = gate
    gated = tmp_path / path.name
    save_file(tensors, str(gated), metadata=metadata)
    plain, folded = (official.load_diffusion_decoder(file, torch.float32).decoder.diff_blocks[0].attn.to_out[0]
                     for file in (path, gated))  # fmt: skip
    assert torch.allclose(folded.weight, plain.weight * gate[:, None], rtol=1e-2)
    assert torch.allclose(folded.bias, plain.bias * gate, rtol=1e-2)


def test_a_split_folder_without_the_diffusion_vae_needs_the_conv_setting(split_root, tmp_path):
    import shutil

    folder = tmp_path / "conv-only"
    shutil.copytree(split_root, folder)
    (folder / official.SPLIT_FILES["diffusion_vae"]).unlink()
    spec = get_model("lightricks:ltx@2.5-fast")
    with pytest.raises(WeightsError, match="diffusion video VAE.*--video-decoder conv"):
        check_folder(folder, spec)
    check_folder(folder, spec, video_decoder="conv")
    check_folder(folder, get_model("ltx-runtime:tiny-ltx25@1"), video_decoder="conv")


def test_an_unknown_video_decoder_is_refused_by_name():
    from ltx_runtime.engine import Engine

    with pytest.raises(ValueError, match="video_decoder must be one of auto, diffusion, conv"):
        Engine("tiny", video_decoder="vae")


def test_auto_picks_the_official_diffusion_decoder_on_a_gpu_and_the_conv_vae_on_the_cpu():
    from ltx_runtime.catalog import choose_video_decoder
    from ltx_runtime.engine import Engine

    assert choose_video_decoder("auto", on_gpu=True) == "diffusion"
    assert choose_video_decoder("auto", on_gpu=False) == "conv"
    assert [choose_video_decoder(name, on_gpu) for name in ("diffusion", "conv") for on_gpu in (True, False)] == [
        "diffusion", "diffusion", "conv", "conv"]  # fmt: skip
    assert Engine("tiny").video_decoder == "conv"  # the default on this CPU


def _clip(engine, model, path, **size):
    request = GenerationRequest(model=model, prompt="rain over a city at night", duration=1, fps=24, audio=True,
                                seed=3, **{"width": 128, "height": 64, **size})  # fmt: skip
    return engine.generate(request, path)


def test_2_5_clips_decode_through_the_diffusion_decoder(diffusion_engine, tmp_path):
    from diffusers import LTX2VideoDiffusionDecoderModel

    assert isinstance(diffusion_engine.load(TINY_FAST).diffusion_decoder, LTX2VideoDiffusionDecoderModel)
    result = _clip(diffusion_engine, TINY_FAST, tmp_path / "clip.mp4", width=136, height=72)
    info = probe(tmp_path / "clip.mp4")
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 136, 72, 24, 24)
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert info.audio_duration == pytest.approx(1.0, abs=0.03)
    assert result.timings["vae_decode"] > 0


def test_the_decoded_clip_is_converted_8_frames_at_a_time(diffusion_engine):
    """diffusers decodes the whole clip at once; the frames go on to the uint8 conversion in chunks of
    DIFFUSION_CHUNK_FRAMES, as the whole clip converted, cropped and trimmed."""
    components = diffusion_engine.load(TINY_FAST)
    decoder = components.diffusion_decoder
    plan = plan_generation(120, 64, 1, 20, 48000)  # generated as 128x64, 25 frames; 120x64 and 20 frames kept
    latent_size = (decoder.config.latent_channels, plan.latent_frames, 2, 4)
    latents = torch.randn(1, *latent_size, generator=torch.Generator().manual_seed(5))
    chunks = list(decode.video_frames(components.pipeline.vae, latents, plan, diffusion_decoder=decoder,
                                      generator=torch.Generator().manual_seed(6)))  # fmt: skip
    whole = diffusion_decode.decode(decoder, latents, torch.Generator().manual_seed(6))
    assert whole.shape[2] == 25
    assert [len(chunk) for chunk in chunks] == [8, 8, 4]
    expected = decode.to_uint8_frames(crop_frames(whole, plan))[:20]
    assert np.array_equal(np.concatenate([chunk.rgb for chunk in chunks]), expected)


def test_the_video_decoder_setting_picks_the_conv_vae_for_2_5_only(diffusion_engine, tiny_root, tmp_path):
    """The same seed through both decoders: different 2.5 clips (the decoders differ), an identical LTX-2 clip (the
    setting does not touch the models that have the conv VAE only)."""
    from ltx_runtime.engine import Engine

    conv = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", video_decoder="conv")
    assert conv.load(TINY_FAST).diffusion_decoder is None
    frames = {}
    for name, which in (("diffusion", diffusion_engine), ("conv", conv)):
        for model in (TINY_FAST, "ltx-runtime:tiny@1"):
            path = tmp_path / f"{name}-{model.split(':')[1]}.mp4"
            _clip(which, model, path)
            frames[name, model] = read_frames(path).astype(np.int16)
    assert frames["diffusion", TINY_FAST].shape == frames["conv", TINY_FAST].shape == (24, 64, 128, 3)
    assert np.abs(frames["diffusion", TINY_FAST] - frames["conv", TINY_FAST]).mean() > 5
    assert np.array_equal(frames["diffusion", "ltx-runtime:tiny@1"], frames["conv", "ltx-runtime:tiny@1"])
