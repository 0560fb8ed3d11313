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

Two architectures: "ltx-2" (LTX-2 19B-shaped: Fast, Pro and the tiny demo model) and "ltx-2.3" (LTX-2.3 22B-shaped:
gated attention, cross-attention modulation, per-modality connector projections, and the bandwidth-extension vocoder,
16 kHz -> 48 kHz). Both folders also hold a tiny distilled LoRA (`distilled_lora/`) for the guided recipes' stage 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .weights import LORA_FOLDER

TINY_FORMAT_VERSION = 2
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


ARCHITECTURES = ("ltx-2", "ltx-2.3")
LORA_FILE = "pytorch_lora_weights.safetensors"


def _build_connectors(architecture: str):
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    if architecture == "ltx-2.3":
        # Per-modality projections; connector widths (heads x head dim) equal the transformer's cross-attention widths.
        return LTX2TextConnectors(
            caption_channels=_TEXT_HIDDEN,
            text_proj_in_factor=_TEXT_LAYERS + 1,
            video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8,
            video_connector_num_layers=1,
            video_connector_num_learnable_registers=None,
            video_gated_attn=True,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=4,
            audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=None,
            audio_gated_attn=True,
            connector_rope_base_seq_len=32,
            rope_type="split",
            per_modality_projections=True,
            video_hidden_dim=16,
            audio_hidden_dim=8,
            proj_bias=True,
        )
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


def _build_transformer(architecture: str, layers: int):
    from diffusers import LTX2VideoTransformer3DModel

    ltx23 = {}
    if architecture == "ltx-2.3":
        ltx23 = dict(
            gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
            use_prompt_embeddings=False, perturbed_attn=True,
        )  # fmt: skip
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
        num_layers=layers,
        caption_channels=_TEXT_HIDDEN,
        rope_type="split",
        rope_double_precision=False,
        **ltx23,
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


def _build_vocoder(architecture: str):
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    if architecture == "ltx-2.3":
        return LTX2VocoderWithBWE(
            in_channels=2 * _MEL_BINS,
            hidden_channels=64,  # halved by each of the six stages
            upsample_kernel_sizes=[11, 4, 4, 4, 4, 4],
            upsample_factors=[5, 2, 2, 2, 2, 2],  # product 160: 100 mel frames/s -> 16 kHz
            resnet_kernel_sizes=[3],
            resnet_dilations=[[1, 3, 5]],
            bwe_in_channels=2 * _MEL_BINS,
            bwe_hidden_channels=32,
            bwe_upsample_kernel_sizes=[12, 11, 4, 4, 4],
            bwe_upsample_factors=[6, 5, 2, 2, 2],  # product 240: 200 mel frames/s (hop 80 at 16 kHz) -> 48 kHz
            bwe_resnet_kernel_sizes=[3],
            bwe_resnet_dilations=[[1, 3, 5]],
            num_mel_channels=_MEL_BINS,
            input_sampling_rate=16000,
            output_sampling_rate=48000,
        )
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


def _save_distilled_lora(pipe, folder: Path) -> None:
    """A tiny LoRA on the transformer's attention projections, in diffusers' LoRA file format. Its B matrices are
    random, not zero, so that loading it visibly changes the transformer's output."""
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = pipe.transformer
    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    type(pipe).save_lora_weights(
        folder, transformer_lora_layers=get_peft_model_state_dict(transformer), weight_name=LORA_FILE
    )
    transformer.delete_adapters("default")


def build_tiny_weights(folder: Path, architecture: str = "ltx-2", seed: int = 0, layers: int = 2) -> Path:
    """Write a tiny random pipeline of `architecture` to `folder` (diffusers layout) and return the folder.

    `layers` transformer blocks (2 by default; the guided recipes' STG block, 29 or 28, exists only from 30 or 29).
    The build is deterministic for a given seed and torch version. An existing folder is replaced.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
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
        connectors=_build_connectors(architecture),
        transformer=_build_transformer(architecture, layers),
        vocoder=_build_vocoder(architecture),
    )
    pipe.save_pretrained(staging, safe_serialization=True)
    _build_latent_upsampler().save_pretrained(staging / "latent_upsampler", safe_serialization=True)
    _save_distilled_lora(pipe, staging / LORA_FOLDER)
    marker = {"format": TINY_FORMAT_VERSION, "architecture": architecture, "seed": seed, "layers": layers}
    (staging / TINY_MARKER).write_text(json.dumps(marker) + "\n")

    # Swap in atomically so that a half-written folder is never loaded.
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def is_tiny(folder: Path) -> bool:
    return (Path(folder) / TINY_MARKER).is_file()


def ensure_tiny_weights(root: Path, architecture: str) -> Path:
    """Return `root/architecture` holding current tiny weights, building them first if absent or outdated."""
    folder = Path(root) / architecture
    marker = folder / TINY_MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("format") == TINY_FORMAT_VERSION:
        return folder
    return build_tiny_weights(folder, architecture)
