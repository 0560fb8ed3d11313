"""Tiny random LTX-2 weights for tests and demo mode.

`build_tiny_weights(folder)` writes randomly initialised LTX-2 components in the same diffusers layout as the real
checkpoint (model_index.json plus one subfolder per component, latent_upsampler/ included), so that tests and demo mode
go through the very loader, recipe, crop/trim and muxing code that production uses.

The widths are tiny (a 2-core CPU renders 1080p in well under a minute) but the *geometry* is the real one, because
the shape arithmetic is what the tests have to prove:
- video VAE: 32x spatial and 8x temporal compression (8k+1 frames -> k+1 latent frames);
- audio: 16 kHz mel spectrogram, hop 160, 4x latent compression -> 25 audio latent frames per second;
- vocoder: the real upsampling factors [6, 5, 2, 2, 2] -> 24 kHz stereo, the LTX-2 vocoder's output rate;
- latent upsampler: x2 spatially, as the real spatial upscaler.
Every trap listed in shared/docs/ltx2-models.md section 4 is called out next to the setting it concerns.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TINY_FORMAT_VERSION = 1
"""Bumped whenever the tiny layout changes, so that cached tiny folders are rebuilt."""

TINY_MARKER = "ltx_runtime_tiny.json"
"""A file the builder drops into the folder; the engine uses it to flag demo output as noise."""

_TEXT_HIDDEN = 32  # must equal the connectors' heads x head_dim (4 x 8) for LTX-2.0 connectors
_TEXT_LAYERS = 2
_MAX_TOKENS = 1024  # the pipeline's default max_sequence_length; tokenizer and Gemma positions must allow it
_VIDEO_LATENT_CHANNELS = 8
_AUDIO_LATENT_CHANNELS = 2
_MEL_BINS = 64  # real value; the audio VAE compresses mel bins 4x
_WORDS = ["a", "the", "cat", "dog", "sunset", "over", "ocean", "city", "night", "rain", "robot", "dancing"]


def _build_tokenizer():
    from transformers import GemmaTokenizer

    # Byte-fallback BPE built in code (no download): the Gemma specials, the 256 byte tokens, a few words.
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for word in _WORDS:
        vocab[f"▁{word}"] = len(vocab)
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=_MAX_TOKENS, padding_side="left")


def _build_text_encoder(vocab_size: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(
        text_config=dict(
            vocab_size=vocab_size + 3,  # three extra ids for the image tokens below
            hidden_size=_TEXT_HIDDEN,
            intermediate_size=64,
            num_hidden_layers=_TEXT_LAYERS,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            sliding_window=64,
            max_position_embeddings=_MAX_TOKENS,
        ),
        vision_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
        ),
        mm_tokens_per_image=4,
        boi_token_index=vocab_size,
        eoi_token_index=vocab_size + 1,
        image_token_index=vocab_size + 2,
    )
    return Gemma3ForConditionalGeneration(config)


def _build_connectors():
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    return LTX2TextConnectors(
        caption_channels=_TEXT_HIDDEN,
        text_proj_in_factor=_TEXT_LAYERS + 1,  # the connectors read every hidden state, embeddings included
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_type="split",
    )


def _build_transformer():
    from diffusers import LTX2VideoTransformer3DModel

    return LTX2VideoTransformer3DModel(
        in_channels=_VIDEO_LATENT_CHANNELS,
        out_channels=_VIDEO_LATENT_CHANNELS,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        vae_scale_factors=(8, 32, 32),  # the real VAE strides: RoPE positions are in pixels and frames
        audio_in_channels=_AUDIO_LATENT_CHANNELS * _MEL_BINS // 4,  # latent channels x latent mel bins
        audio_out_channels=_AUDIO_LATENT_CHANNELS * _MEL_BINS // 4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        caption_channels=_TEXT_HIDDEN,
        rope_type="split",
        rope_double_precision=False,
    )


def _build_video_vae():
    from diffusers import AutoencoderKLLTX2Video

    return AutoencoderKLLTX2Video(
        latent_channels=_VIDEO_LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(4, 8, 16),  # each up block halves the width: (c, 2c, 4c)
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(0, 1, 1, 1),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),  # the real order
        upsample_residual=(False, True, True),  # a residual up-sampler needs an input width divisible by 8
        patch_size=4,
        patch_size_t=1,
        # The class would derive 64/16 from this block layout; the real model compresses 32x and 8x.
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
        # Reflect padding copies the tensor before every conv: 3x slower decode on CPU, same shapes.
        decoder_spatial_padding_mode="zeros",
    )


def _build_audio_vae():
    from diffusers import AutoencoderKLLTX2Audio

    return AutoencoderKLLTX2Audio(
        base_channels=_AUDIO_LATENT_CHANNELS * _MEL_BINS // 4,  # its latents mean/std have this size
        output_channels=2,  # stereo
        ch_mult=(1, 2, 4),  # really up-samples; the 4x compression is fixed
        num_res_blocks=1,
        latent_channels=_AUDIO_LATENT_CHANNELS,
        sample_rate=16000,
        mel_hop_length=160,
        mel_bins=_MEL_BINS,
    )


def _build_vocoder():
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    return LTX2Vocoder(
        in_channels=2 * _MEL_BINS,  # stereo x mel bins
        hidden_channels=32,  # halved by each of the five up-sampling stages
        upsample_kernel_sizes=[12, 10, 4, 4, 4],
        upsample_factors=[6, 5, 2, 2, 2],  # product 240: 100 mel frames/s -> 24 kHz
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        output_sampling_rate=24000,
    )


def _build_latent_upsampler():
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    # mid_channels must be a multiple of 32 (GroupNorm(32)).
    return LTX2LatentUpsamplerModel(in_channels=_VIDEO_LATENT_CHANNELS, mid_channels=32, num_blocks_per_stage=1)


def build_tiny_weights(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random LTX-2 pipeline to `folder` (diffusers layout) and return the folder.

    The build is deterministic for a given seed and torch version. An existing folder is replaced.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)

    torch.manual_seed(seed)
    tokenizer = _build_tokenizer()
    pipe = LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05),
        vae=_build_video_vae(),
        audio_vae=_build_audio_vae(),
        text_encoder=_build_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        connectors=_build_connectors(),
        transformer=_build_transformer(),
        vocoder=_build_vocoder(),
    )
    pipe.save_pretrained(staging, safe_serialization=True)
    _build_latent_upsampler().save_pretrained(staging / "latent_upsampler", safe_serialization=True)
    (staging / TINY_MARKER).write_text(json.dumps({"format": TINY_FORMAT_VERSION, "seed": seed}) + "\n")

    # Swap in atomically so that a half-written folder is never loaded.
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def is_tiny(folder: Path) -> bool:
    return (Path(folder) / TINY_MARKER).is_file()


def ensure_tiny_weights(folder: Path) -> Path:
    """Return `folder` holding current tiny weights, building them first if absent or outdated."""
    marker = Path(folder) / TINY_MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("format") == TINY_FORMAT_VERSION:
        return Path(folder)
    return build_tiny_weights(folder)
