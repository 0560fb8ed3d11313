"""Tiny random LTX-2 weights for tests and demo mode.

`build_tiny_weights(folder)` writes randomly initialised LTX-2 components in the same diffusers layout as the real
checkpoint (model_index.json plus one subfolder per component, latent_upsampler/ included), so that tests and demo mode
go through the very loader, recipe, crop/trim and muxing code that production uses.

The widths, depths and head counts are tiny (a 2-core CPU renders 1080p in about a minute); every other config key
is the released checkpoints' (configs.py; tests/engine/test_tiny_configs.py lists the exceptions by name), so
the *geometry* and the behaviour switches are the real ones:
- video VAE: 32x spatial and 8x temporal compression (8k+1 frames -> k+1 latent frames);
- audio: 16 kHz mel spectrogram, hop 160, 4x latent compression -> 25 audio latent frames per second;
- vocoder: the real upsampling factors [6, 5, 2, 2, 2] -> 24 kHz stereo, the LTX-2 vocoder's output rate;
- latent upsampler: x2 spatially, as the real spatial upscaler.
Every trap listed in shared/docs/ltx2-models.md section 4 is called out next to the setting it concerns.

Three architectures: "ltx-2" (LTX-2 19B-shaped: Fast, Pro and the tiny demo model), "ltx-2.3" (LTX-2.3 22B-shaped:
gated attention, cross-attention modulation, per-modality connector projections, and the bandwidth-extension vocoder,
16 kHz -> 48 kHz) and "ltx-2.5" (the 2.3 shape without video FFN biases, with the keyframe abs-position embedding, a
Gemma 4 text encoder stamped with the fine-tune's version, and the duration head). Every folder also holds a tiny
distilled LoRA (`distilled_lora/`) for the guided recipes' stage 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .configs import (
    AUDIO_VAE,
    CONNECTORS,
    DURATION_HEAD,
    GEMMA4_LTX_VERSION,
    GEMMA4_TEXT_SWITCHES,
    CONNECTORS_BY_ARCHITECTURE,
    GEMMA3_12B,
    GEMMA3_12B_TEXT,
    GEMMA3_VISION,
    SCHEDULER,
    TRANSFORMER,
    TRANSFORMER_BY_ARCHITECTURE,
    UPSAMPLER,
    UPSAMPLER_BY_ARCHITECTURE,
    VIDEO_VAE,
    VIDEO_VAE_BY_ARCHITECTURE,
    VOCODER_2_0,
    VOCODER_2_3,
)
from .diffusion_vae import DIFFUSION_DECODER_FOLDER, tiny_diffusion_decoder
from .loras import LORA_FOLDER

TINY_FORMAT_VERSION = 5
"""Bumped whenever the tiny layout changes, so that cached tiny folders are rebuilt."""

TINY_MARKER = "ltx_runtime_tiny.json"
"""A file the builder drops into the folder; the engine uses it to flag demo output as noise."""

_TEXT_HIDDEN = 32  # must equal the connectors' heads x head_dim (4 x 8) for LTX-2.0 connectors
_MAX_TOKENS = 1024  # the pipeline's default max_sequence_length; the tokenizer must allow it
_TEXT_LAYERS = 6  # Gemma 3 alternates five sliding-window layers and one full-attention layer: one of each kind
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
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[], model_max_length=_MAX_TOKENS, padding_side="left")
    tokenizer.add_bos_token = True  # as Gemma's own tokenizer: every prompt starts with <bos>
    return tokenizer


def _build_text_encoder(vocab_size: int, architecture: str = "ltx-2"):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    if architecture == "ltx-2.5":
        return _build_gemma4_text_encoder(vocab_size)
    config = Gemma3Config(
        text_config={
            **GEMMA3_12B_TEXT, "vocab_size": vocab_size + 3,  # three extra ids for the image tokens below
            "hidden_size": _TEXT_HIDDEN, "intermediate_size": 64, "num_hidden_layers": _TEXT_LAYERS,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
        },
        vision_config={**GEMMA3_VISION, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2},
        **GEMMA3_12B,
        boi_token_index=vocab_size,
        eoi_token_index=vocab_size + 1,
        image_token_index=vocab_size + 2,
    )  # fmt: skip
    return Gemma3ForConditionalGeneration(config)


def _build_gemma4_text_encoder(vocab_size: int):
    """LTX-2.5's text encoder: a Gemma 4 ("gemma4_unified") tower, stamped with the fine-tune's `gemma_version`."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    # Seven extra ids at the end of the vocabulary for Gemma 4's image, video and audio marker tokens.
    markers = dict(zip(("boi_token_id", "eoi_token_id", "image_token_id", "video_token_id", "boa_token_id",
                        "eoa_token_index", "audio_token_id"), range(vocab_size, vocab_size + 7)))  # fmt: skip
    config = Gemma4UnifiedConfig(
        text_config={**GEMMA4_TEXT_SWITCHES, "vocab_size": vocab_size + 7, "hidden_size": _TEXT_HIDDEN,
                     "intermediate_size": 64, "num_hidden_layers": _TEXT_LAYERS, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "head_dim": 8, "global_head_dim": 16},
        vision_config={"mm_embed_dim": 16, "mm_posemb_size": 8, "output_proj_dims": _TEXT_HIDDEN},
        audio_config=None,
        **markers,
    )  # fmt: skip
    config.gemma_version = GEMMA4_LTX_VERSION
    return Gemma4UnifiedForConditionalGeneration(config)


ARCHITECTURES = ("ltx-2", "ltx-2.3", "ltx-2.5")
GATED_ARCHITECTURES = ("ltx-2.3", "ltx-2.5")
"""The 22B family: gated attention, per-modality connectors, the 48 kHz bandwidth-extension vocoder."""
LORA_FILE = "pytorch_lora_weights.safetensors"


def _build_connectors(architecture: str):
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    # Connector widths (heads x head dim) equal the transformer's cross-attention widths (LTX-2.3) or Gemma's hidden
    # size (LTX-2.0, whose transformer projects the captions itself).
    sizes = dict(caption_channels=_TEXT_HIDDEN, text_proj_in_factor=_TEXT_LAYERS + 1, video_connector_num_layers=1,
                 audio_connector_num_layers=1)  # fmt: skip
    if architecture in GATED_ARCHITECTURES:
        sizes.update(video_connector_num_attention_heads=2, video_connector_attention_head_dim=8, video_hidden_dim=16,
                     audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=4, audio_hidden_dim=8)  # fmt: skip
    else:
        sizes.update(video_connector_num_attention_heads=4, video_connector_attention_head_dim=8,
                     audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8)  # fmt: skip
    return LTX2TextConnectors(**{**CONNECTORS, **CONNECTORS_BY_ARCHITECTURE[architecture], **sizes})


def _build_transformer(architecture: str, layers: int):
    from diffusers import LTX2VideoTransformer3DModel

    sizes = dict(
        in_channels=_VIDEO_LATENT_CHANNELS, out_channels=_VIDEO_LATENT_CHANNELS, num_attention_heads=2,
        attention_head_dim=8, cross_attention_dim=16, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=layers, caption_channels=_TEXT_HIDDEN,
        audio_in_channels=_AUDIO_LATENT_CHANNELS * _MEL_BINS // 4,  # latent channels x latent mel bins
        audio_out_channels=_AUDIO_LATENT_CHANNELS * _MEL_BINS // 4,
    )  # fmt: skip
    return LTX2VideoTransformer3DModel(**{**TRANSFORMER, **TRANSFORMER_BY_ARCHITECTURE[architecture], **sizes})


def _build_video_vae(architecture: str):
    from diffusers import AutoencoderKLLTX2Video

    # The real block layout (strides, up-sampler types and factors, residuals, padding) with tiny widths. LTX-2.0's
    # residual up-samplers need doubling widths whose inputs divide by 8: (8, 16, 32) is the smallest that works.
    decoder = dict(decoder_block_out_channels=(8, 16, 32), decoder_layers_per_block=(0, 1, 1, 1))
    if architecture in GATED_ARCHITECTURES:
        decoder = dict(decoder_block_out_channels=(4, 8, 8, 16), decoder_layers_per_block=(0, 1, 1, 1, 1))
    return AutoencoderKLLTX2Video(**{
        **VIDEO_VAE, **VIDEO_VAE_BY_ARCHITECTURE[architecture], **decoder,
        "latent_channels": _VIDEO_LATENT_CHANNELS, "block_out_channels": (8, 8, 8, 8), "layers_per_block": (1, 1, 1, 1, 1),
    })  # fmt: skip


def _build_audio_vae():
    from diffusers import AutoencoderKLLTX2Audio

    # base_channels must equal latent channels x mel bins / 4: the latents' mean and std have that size.
    sizes = dict(base_channels=_AUDIO_LATENT_CHANNELS * _MEL_BINS // 4, latent_channels=_AUDIO_LATENT_CHANNELS, num_res_blocks=1)
    return AutoencoderKLLTX2Audio(**{**AUDIO_VAE, **sizes})


def _build_vocoder(architecture: str):
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    if architecture in GATED_ARCHITECTURES:  # 16 kHz, then bandwidth extension to 48 kHz
        return LTX2VocoderWithBWE(**{**VOCODER_2_3, "hidden_channels": 64, "bwe_hidden_channels": 32})
    return LTX2Vocoder(**{**VOCODER_2_0, "hidden_channels": 32})  # halved by each of the five stages; 24 kHz


def _build_latent_upsampler(architecture: str):
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    # mid_channels must be a multiple of 32 (GroupNorm(32)).
    sizes = dict(in_channels=_VIDEO_LATENT_CHANNELS, mid_channels=32, num_blocks_per_stage=1)
    return LTX2LatentUpsamplerModel(**{**UPSAMPLER, **UPSAMPLER_BY_ARCHITECTURE[architecture], **sizes})


def _build_duration_head():
    """LTX-2.5's duration head, as wide as the tiny 2.5 connectors' outputs (video 2 x 8, audio 2 x 4). Its output
    bias is set to log(4 s) so that the random head picks a few seconds, not the 1 s floor, for every prompt."""
    import math

    import torch
    from diffusers.pipelines.ltx2 import LTX2DurationHead

    head = LTX2DurationHead(**{**DURATION_HEAD, "video_cross_attention_dim": 16, "audio_cross_attention_dim": 8,
                               "pooler_hidden_dim": 16, "num_pooler_heads": 2, "mlp_hidden_dim": 16})  # fmt: skip
    with torch.no_grad():
        head.mlp_out.bias.fill_(math.log(4.0))
    return head


def _save_random_lora(transformer, folder: Path, file_name: str = LORA_FILE) -> Path:
    """A tiny LoRA on the transformer's attention projections, in diffusers' LoRA file format. Its B matrices are
    random, not zero, so that loading it visibly changes the transformer's output."""
    from diffusers import LTX2Pipeline
    from peft import LoraConfig, get_peft_model_state_dict

    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    LTX2Pipeline.save_lora_weights(
        folder, transformer_lora_layers=get_peft_model_state_dict(transformer), weight_name=file_name
    )
    transformer.delete_adapters("default")
    return Path(folder) / file_name


def build_tiny_lora(weights_folder: Path, output: Path, seed: int) -> Path:
    """A random LoRA for the tiny transformer in `weights_folder` (a user LoRA for tests and demo mode: put it in
    the weights root's loras/ folder and list its id, ltx_runtime/loras.py). Deterministic for a seed."""
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    transformer = LTX2VideoTransformer3DModel.from_pretrained(Path(weights_folder) / "transformer", local_files_only=True)
    torch.manual_seed(seed)
    return _save_random_lora(transformer, Path(output).parent, Path(output).name)


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
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=_build_video_vae(architecture),
        audio_vae=_build_audio_vae(),
        text_encoder=_build_text_encoder(len(tokenizer), architecture),
        tokenizer=tokenizer,
        connectors=_build_connectors(architecture),
        transformer=_build_transformer(architecture, layers),
        vocoder=_build_vocoder(architecture),
        duration_head=_build_duration_head() if architecture == "ltx-2.5" else None,
    )
    pipe.save_pretrained(staging, safe_serialization=True)
    _build_latent_upsampler(architecture).save_pretrained(staging / "latent_upsampler", safe_serialization=True)
    _save_random_lora(pipe.transformer, staging / LORA_FOLDER)
    if architecture == "ltx-2.5":
        tiny_diffusion_decoder(pipe.vae).save_pretrained(staging / DIFFUSION_DECODER_FOLDER, safe_serialization=True)
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
