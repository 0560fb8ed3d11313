"""Lightricks' own checkpoint files (the ltx-pipelines / ComfyUI layout) loaded into diffusers components, and tiny
random weights written in that format.

A folder as users keep it:

    checkpoints/ltx-2-19b-distilled.safetensors      (or -dev): transformer + text connectors + video VAE
                                                      + audio VAE + vocoder, config JSON in the file's metadata
    latent_upscale_models/ltx-2-spatial-upscaler-x2-1.0.safetensors   its own flat config in the metadata
    loras/ltx-2-19b-distilled-lora-384.safetensors   (guided models: the distilled LoRA for stage 2)
    gemma-3/ (any subfolder with tokenizer_config.json): Gemma 3, model*.safetensors in the old key layout
                                                      (language_model.model.*, vision_tower.*, multi_modal_projector.*),
                                                      tokenizer.json / tokenizer.model

LTX-2.5 comes as split files, one per component (`SPLIT_FILES`; ltx-pipelines 1.2.0's split mode, ComfyUI's folders):

    diffusion_models/ltx-2.5-22b-{distilled,dev}-transformer-bf16.safetensors   transformer + text connectors
    text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors   the fine-tuned Gemma 4, its projection, config and
                                                                  tokenizer inside
    vae/ltx-2.5-video-vae-conv-bf16.safetensors (conv VAE), vae/ltx-2.5-video-vae-bf16.safetensors (the diffusion
    decoder's VAE), vae/ltx-2.5-audio-vae-bf16.safetensors (audio VAE + vocoder)
    latent_upscale_models/, loras/ (dev), model_patches/ltx-2.5-duration-head-bf16.safetensors

Everything is read from the files themselves: each diffusers component is built from the checkpoint's `config`
metadata (no config download) and each of its tensors is read under its official name (`to_official`, the same map
that writes tiny weights in this format). diffusers' `from_single_file` is not used: its LTX-2 maps cover the 2.0
transformer and VAEs only (no connectors, vocoder, upsampler or LTX-2.3 keys) and take their configs from a hub repo.
tests/engine/test_official.py checks our names against diffusers' own single-file conversion where it exists
(`convert_ltx2_*_to_diffusers`), tests/engine/test_parity.py against ltx-core 1.0.0's configurators and outputs, and
scripts/ltx25_parity.py (by hand) the LTX-2.5 files against ltx-core / ltx-pipelines 1.2.0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .configs import GEMMA4_LTX_VERSION as GEMMA4_VERSION
from .diffusion_vae import TINY_DIFFUSION_DECODER, diffusers_diffusion_decoder_config, tiny_diffusion_decoder

if TYPE_CHECKING:  # torch itself only where tensors are made: the folder checks run before it is imported
    import torch

CHECKPOINTS = "checkpoints"
UPSCALERS = "latent_upscale_models"
LORAS = "loras"
TINY_FILES = {
    "ltx-2": ("ltx-2-19b-distilled.safetensors", "ltx-2-19b-dev.safetensors",
              "ltx-2-spatial-upscaler-x2-1.0.safetensors", "ltx-2-19b-distilled-lora-384.safetensors"),
    "ltx-2.3": ("ltx-2.3-22b-distilled-1.1.safetensors", "ltx-2.3-22b-dev.safetensors",
                "ltx-2.3-spatial-upscaler-x2-1.1.safetensors", "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"),
}  # fmt: skip
"""(distilled, dev, spatial upsampler, distilled LoRA) file names of each architecture, as Lightricks names them."""

DIFFUSION_MODELS = "diffusion_models"
SPLIT_FILES = {
    "distilled": f"{DIFFUSION_MODELS}/ltx-2.5-22b-distilled-transformer-bf16.safetensors",
    "dev": f"{DIFFUSION_MODELS}/ltx-2.5-22b-dev-transformer-bf16.safetensors",
    "text_encoder": "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "video_vae": "vae/ltx-2.5-video-vae-conv-bf16.safetensors",
    "diffusion_vae": "vae/ltx-2.5-video-vae-bf16.safetensors",
    "audio_vae": "vae/ltx-2.5-audio-vae-bf16.safetensors",
    "upsampler": f"{UPSCALERS}/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors",
    "lora": f"{LORAS}/ltx-2.5-22b-distilled-lora-450-bf16.safetensors",
    "duration_head": "model_patches/ltx-2.5-duration-head-bf16.safetensors",
}  # fmt: skip
"""LTX-2.5's split files (one per component, the ComfyUI layout; shared/docs/ltx25.md section 1.1). Two video VAEs
for the same latents: the conv one (its encoder encodes every image; its decoder decodes with `--video-decoder conv`)
and the diffusion one (encoder and diffusion decoder; its decoder decodes by default, as in the official pipelines:
diffusion_decode.py). Only the file of the decoder in use is required."""
SPLIT_MODEL_VERSION = "2.5.0"
"""The transformer file's `model_version` metadata: ltx-pipelines 1.2.0 samples stage 1 ancestrally from (2, 5) and
takes the 2.4+ parameters (`detect_model_version`, `detect_params`). The released file's exact string is not in our
sources [U]; any 2.5.x parses the same."""


def is_official_folder(folder: Path) -> bool:
    return (Path(folder) / CHECKPOINTS).is_dir() or (Path(folder) / DIFFUSION_MODELS).is_dir()


def is_split_folder(folder: Path) -> bool:
    return (Path(folder) / DIFFUSION_MODELS).is_dir()


# --- configs: the official metadata is the source; diffusers configs are derived from it ----------------------------


def tiny_official_config(architecture: str = "ltx-2", gemma_hidden: int = 32) -> dict:
    """The `config` metadata of a tiny main checkpoint: the real keys and values except widths, depths and head
    counts. Sizes ltx-core fixes are kept: 128 latent channels, 8x32x32 VAE, 8 audio latent channels x 16 mel bins,
    128 learnable registers; LTX-2's connectors are as wide as Gemma (`gemma_hidden`), LTX-2.3's as their stream."""
    if architecture not in ("ltx-2", "ltx-2.3", "ltx-2.5"):
        raise ValueError(f"official-format tiny weights exist for ltx-2, ltx-2.3 and ltx-2.5, not {architecture!r}")
    transformer = dict(
        dropout=0.0, attention_bias=True, num_vector_embeds=None, activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000, use_linear_projection=False, only_cross_attention=False, cross_attention_norm=True,
        double_self_attention=False, upcast_attention=False, standardization_norm="rms_norm",
        norm_elementwise_affine=False, qk_norm="rms_norm", positional_embedding_type="rope",
        use_audio_video_cross_attention=True, share_ff=False, av_cross_ada_norm=True, use_middle_indices_grid=True,
        num_attention_heads=2, attention_head_dim=8, in_channels=128, out_channels=128, num_layers=2,
        cross_attention_dim=16, caption_channels=gemma_hidden, norm_eps=1e-6, attention_type="default",
        positional_embedding_theta=10000.0, positional_embedding_max_pos=[20, 2048, 2048],
        timestep_scale_multiplier=1000, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_in_channels=128, audio_out_channels=128, audio_cross_attention_dim=8,
        audio_positional_embedding_max_pos=[20], av_ca_timestep_scale_multiplier=1000, rope_type="split",
        frequencies_precision="float64", connector_num_attention_heads=4, connector_attention_head_dim=8,
        connector_num_layers=1, connector_positional_embedding_max_pos=[4096],
    )  # fmt: skip
    assert transformer["connector_num_attention_heads"] * transformer["connector_attention_head_dim"] == gemma_hidden
    vae = dict(
        dims=3, in_channels=3, out_channels=3, latent_channels=128, latent_log_var="uniform", norm_layer="pixel_norm",
        patch_size=4, causal_decoder=False, timestep_conditioning=False, spatial_padding_mode="zeros",
        decoder_base_channels=8,
        encoder_blocks=[["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 1}],
                        ["res_x", {"num_layers": 1}], ["compress_time_res", {"multiplier": 1}],
                        ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 1}],
                        ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 1}],
                        ["res_x", {"num_layers": 1}]],
        decoder_blocks=[["res_x", {"num_layers": 1, "inject_noise": False}],
                        ["compress_all", {"residual": True, "multiplier": 2}],
                        ["res_x", {"num_layers": 1, "inject_noise": False}],
                        ["compress_all", {"residual": True, "multiplier": 2}],
                        ["res_x", {"num_layers": 1, "inject_noise": False}],
                        ["compress_all", {"residual": True, "multiplier": 2}],
                        ["res_x", {"num_layers": 1, "inject_noise": False}]],
    )  # fmt: skip
    audio_vae = {
        "model": {"params": {"sampling_rate": 16000, "ddconfig": dict(
            ch=128, out_ch=2, ch_mult=[1, 1, 1], num_res_blocks=1, attn_resolutions=[], resolution=256,
            z_channels=8, double_z=True, norm_type="pixel", causality_axis="height", dropout=0.0,
            mid_block_add_attention=False, in_channels=2, resamp_with_conv=True, attn_type="vanilla", mel_bins=64,
        )}},  # fmt: skip
        "preprocessing": {"stft": {"hop_length": 160, "filter_length": 1024, "causal": True},
                          "mel": {"n_mel_channels": 64}},
    }  # fmt: skip
    vocoder = dict(
        resblock="1", stereo=True, resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]],
        upsample_rates=[6, 5, 2, 2, 2], upsample_kernel_sizes=[16, 15, 8, 4, 4], upsample_initial_channel=32,
        output_sampling_rate=24000, use_tanh_at_final=True, use_bias_at_final=True,
    )  # fmt: skip
    if architecture in ("ltx-2.3", "ltx-2.5"):
        # 22B: gated attention, cross-attention AdaLN, the text projections moved before the per-modality
        # connectors (each as wide as its stream), the bandwidth-extension vocoder (16 -> 48 kHz).
        transformer.update(
            apply_gated_attention=True, cross_attention_adaln=True, caption_proj_before_connector=True,
            caption_projection_first_linear=False, caption_proj_input_norm=False,
            caption_projection_second_linear=False, connector_apply_gated_attention=True,
            connector_num_attention_heads=2, connector_attention_head_dim=8, audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=4,
        )  # fmt: skip
        amp = dict(resblock="AMP1", stereo=True, activation="snakebeta", resblock_kernel_sizes=[3],
                   resblock_dilation_sizes=[[1, 3, 5]], use_tanh_at_final=False, use_bias_at_final=False)  # fmt: skip
        vocoder = {
            "vocoder": dict(amp, upsample_rates=[5, 2, 2, 2, 2, 2], upsample_kernel_sizes=[11, 4, 4, 4, 4, 4],
                            upsample_initial_channel=64),
            "bwe": dict(amp, upsample_rates=[6, 5, 2, 2, 2], upsample_kernel_sizes=[12, 11, 4, 4, 4],
                        upsample_initial_channel=32, input_sampling_rate=16000, output_sampling_rate=48000,
                        n_fft=512, hop_length=80, num_mels=64),
        }  # fmt: skip
    if architecture == "ltx-2.5":
        # ltx-core 1.2.0 LTXModelConfigurator: "LTX 2.5 (gemma4) sets ff_bias=false" (the audio FFN keeps its biases),
        # and the generated-keyframe checkpoints set use_keyframes_abs_pos_embedding.
        transformer.update(ff_bias=False, audio_ff_bias=True, use_keyframes_abs_pos_embedding=True)
    return {"transformer": transformer, "vae": vae, "audio_vae": audio_vae, "vocoder": vocoder}


def tiny_upsampler_config() -> dict:
    """The flat `config` metadata of a tiny spatial x2 upsampler (mid channels: a multiple of 32, GroupNorm(32))."""
    return dict(in_channels=128, mid_channels=32, num_blocks_per_stage=1, dims=3, spatial_upsample=True,
                temporal_upsample=False, spatial_scale=2.0, rational_resampler=False)  # fmt: skip


def _vae_block_layout(blocks: list, compress_prefix: str) -> tuple[list[int], list[str]]:
    """(res_x layer counts, compression kinds) of an official encoder or decoder block list in running order: one
    count per gap around the compressions (before the first, between two, after the last; 0 where a gap has no
    res_x block), which is how diffusers builds a VAE (a down block's res layers and downsampler, then the mid block;
    the mid block, then each up block's upsampler and res layers)."""
    layers, kinds, pending = [], [], None
    for name, params in blocks:
        if name == "res_x":
            if pending is not None:
                raise ValueError("video VAE blocks: two res_x blocks in a row have no diffusers equivalent")
            pending = params if isinstance(params, int) else params["num_layers"]
        elif name.startswith(compress_prefix):
            layers.append(pending or 0)
            kinds.append(name.removeprefix(compress_prefix).removesuffix("_res"))
            pending = None
        else:
            raise ValueError(f"video VAE block {name!r} has no diffusers equivalent")
    return [*layers, pending or 0], kinds


def _official_block_indices(gap_layers) -> tuple[list[int | None], list[int]]:
    """Where the official block list (running order) keeps each gap's res_x block (None where the gap has none) and
    each compression, from the res layer count of every gap (`_vae_block_layout`)."""
    res_blocks, compressions, index = [], [], 0
    for gap, layers in enumerate(gap_layers):
        res_blocks.append(index if layers else None)
        index += 1 if layers else 0
        if gap < len(gap_layers) - 1:
            compressions.append(index)
            index += 1
    return res_blocks, compressions


def diffusers_configs(config: dict, gemma_layers: int) -> dict[str, dict]:
    """Constructor arguments of each diffusers component, from an official main checkpoint's `config` metadata.

    `gemma_layers` is the Gemma text tower's depth (the projection reads every hidden state, embeddings included)."""
    t, vae, vocoder = config["transformer"], config["vae"], config["vocoder"]
    ddconfig = config["audio_vae"]["model"]["params"]["ddconfig"]
    kind_names = {"space": "spatial", "time": "temporal", "all": "spatiotemporal"}

    encoder_layers, down_kinds = _vae_block_layout(vae["encoder_blocks"], "compress_")
    multipliers = [p.get("multiplier", 2) for n, p in vae["encoder_blocks"] if n.startswith("compress_")]
    widths, width = [], vae.get("latent_channels", 128)
    for multiplier in multipliers:
        width *= multiplier
        widths.append(width)
    # The decoder runs its block list reversed; diffusers takes upsample_type in running order and reverses the rest.
    running = list(reversed(vae["decoder_blocks"]))
    decoder_layers, up_kinds = _vae_block_layout(running, "compress_")
    up_blocks = [params for name, params in running if name.startswith("compress_")]
    widths_in, width = [], vae.get("decoder_base_channels", 128) * 8
    for params in up_blocks:
        widths_in.append(width)
        width //= params.get("multiplier", 1)
    ltx23 = "bwe" in vocoder
    transformer = dict(
        in_channels=t["in_channels"], out_channels=t["out_channels"], patch_size=1, patch_size_t=1,
        num_attention_heads=t["num_attention_heads"], attention_head_dim=t["attention_head_dim"],
        cross_attention_dim=t["cross_attention_dim"], vae_scale_factors=(8, 32, 32),
        pos_embed_max_pos=t["positional_embedding_max_pos"][0], base_height=t["positional_embedding_max_pos"][1],
        base_width=t["positional_embedding_max_pos"][2], audio_in_channels=t["audio_in_channels"],
        audio_out_channels=t["audio_out_channels"], audio_num_attention_heads=t["audio_num_attention_heads"],
        audio_attention_head_dim=t["audio_attention_head_dim"],
        audio_cross_attention_dim=t["audio_cross_attention_dim"],
        audio_pos_embed_max_pos=t["audio_positional_embedding_max_pos"][0], num_layers=t["num_layers"],
        activation_fn=t["activation_fn"], qk_norm="rms_norm_across_heads", norm_elementwise_affine=False,
        norm_eps=t["norm_eps"], caption_channels=t["caption_channels"], attention_bias=True, attention_out_bias=True,
        rope_theta=t["positional_embedding_theta"], rope_double_precision=t.get("frequencies_precision") == "float64",
        timestep_scale_multiplier=t["timestep_scale_multiplier"],
        cross_attn_timestep_scale_multiplier=t["av_ca_timestep_scale_multiplier"], rope_type=t["rope_type"],
        gated_attn=ltx23, cross_attn_mod=ltx23, audio_gated_attn=ltx23, audio_cross_attn_mod=ltx23,
        use_prompt_embeddings=not ltx23, perturbed_attn=True,  # STG runs on every model (ltx2-models.md 2a item 2)
        ff_bias=t.get("ff_bias", True), audio_ff_bias=t.get("audio_ff_bias", True),
        use_keyframes_abs_pos_embedding=t.get("use_keyframes_abs_pos_embedding", False),
    )  # fmt: skip
    connectors = dict(
        caption_channels=t["caption_channels"], text_proj_in_factor=gemma_layers + 1,
        video_connector_num_attention_heads=t["connector_num_attention_heads"],
        video_connector_attention_head_dim=t["connector_attention_head_dim"],
        video_connector_num_layers=t["connector_num_layers"], video_connector_num_learnable_registers=128,
        audio_connector_num_attention_heads=t.get("audio_connector_num_attention_heads", t["connector_num_attention_heads"]),
        audio_connector_attention_head_dim=t.get("audio_connector_attention_head_dim", t["connector_attention_head_dim"]),
        audio_connector_num_layers=t.get("audio_connector_num_layers", t["connector_num_layers"]),
        audio_connector_num_learnable_registers=128,
        connector_rope_base_seq_len=t["connector_positional_embedding_max_pos"][0],
        rope_theta=t["positional_embedding_theta"], rope_double_precision=t.get("frequencies_precision") == "float64",
        causal_temporal_positioning=False, rope_type=t["rope_type"],
    )  # fmt: skip
    video_vae = dict(
        in_channels=vae["in_channels"], out_channels=vae["out_channels"], latent_channels=vae["latent_channels"],
        block_out_channels=tuple(widths), down_block_types=("LTX2VideoDownBlock3D",) * len(widths),
        decoder_block_out_channels=tuple(reversed(widths_in)), layers_per_block=tuple(encoder_layers),
        decoder_layers_per_block=tuple(reversed(decoder_layers)),
        spatio_temporal_scaling=(True,) * len(widths), decoder_spatio_temporal_scaling=(True,) * len(up_blocks),
        decoder_inject_noise=(False,) * len(decoder_layers),
        downsample_type=tuple(kind_names[kind] for kind in down_kinds),
        upsample_type=tuple(kind_names[kind] for kind in up_kinds),
        upsample_residual=tuple(bool(p.get("residual")) for p in reversed(up_blocks)),
        upsample_factor=tuple(p.get("multiplier", 1) for p in reversed(up_blocks)),
        timestep_conditioning=vae["timestep_conditioning"], patch_size=vae["patch_size"], patch_size_t=1,
        resnet_norm_eps=1e-6, encoder_causal=True, decoder_causal=vae["causal_decoder"],
        encoder_spatial_padding_mode=vae.get("spatial_padding_mode", "zeros"),
        decoder_spatial_padding_mode=vae.get("spatial_padding_mode", "reflect"),
        spatial_compression_ratio=32, temporal_compression_ratio=8,
    )  # fmt: skip
    stft = config["audio_vae"]["preprocessing"]["stft"]
    audio_vae = dict(
        base_channels=ddconfig["ch"], output_channels=ddconfig["out_ch"], ch_mult=tuple(ddconfig["ch_mult"]),
        num_res_blocks=ddconfig["num_res_blocks"], attn_resolutions=tuple(ddconfig["attn_resolutions"]) or None,
        in_channels=ddconfig["in_channels"], resolution=ddconfig["resolution"], latent_channels=ddconfig["z_channels"],
        norm_type=ddconfig["norm_type"], causality_axis=ddconfig["causality_axis"], dropout=ddconfig["dropout"],
        mid_block_add_attention=ddconfig["mid_block_add_attention"],
        sample_rate=config["audio_vae"]["model"]["params"]["sampling_rate"], mel_hop_length=stft["hop_length"],
        is_causal=stft["causal"], mel_bins=ddconfig["mel_bins"], double_z=ddconfig["double_z"],
    )  # fmt: skip
    vocoder_config = _diffusers_vocoder(vocoder["vocoder"] if ltx23 else vocoder, 2 * ddconfig["mel_bins"])
    if ltx23:
        bwe = vocoder["bwe"]
        vocoder_config.update({f"bwe_{key}": value for key, value in _diffusers_vocoder(bwe, 2 * bwe["num_mels"], False).items()
                               if key not in ("output_sampling_rate",)})  # fmt: skip
        vocoder_config.update(filter_length=bwe["n_fft"], hop_length=bwe["hop_length"], window_length=bwe["n_fft"],
                              num_mel_channels=bwe["num_mels"], input_sampling_rate=bwe["input_sampling_rate"],
                              output_sampling_rate=bwe["output_sampling_rate"])  # fmt: skip
        connectors.update(
            video_gated_attn=t["connector_apply_gated_attention"], audio_gated_attn=t["connector_apply_gated_attention"],
            per_modality_projections=t["caption_proj_before_connector"], proj_bias=True,
            video_hidden_dim=t["num_attention_heads"] * t["attention_head_dim"],
            audio_hidden_dim=t["audio_num_attention_heads"] * t["audio_attention_head_dim"],
        )  # fmt: skip
    return dict(transformer=transformer, connectors=connectors, vae=video_vae, audio_vae=audio_vae,
                vocoder=vocoder_config)  # fmt: skip


def _diffusers_vocoder(config: dict, in_channels: int, final_activation: bool = True) -> dict:
    """An official (HiFi-GAN style) vocoder config as LTX2Vocoder arguments; "AMP1" blocks are the anti-aliased
    snake-beta ones of the LTX-2.3 vocoder. ltx-core ends with tanh, or a clamp, except in the BWE generator."""
    amp = config.get("resblock", "1") == "AMP1"
    final = ("tanh" if config.get("use_tanh_at_final", True) else "clamp") if final_activation else None
    return dict(
        in_channels=in_channels, hidden_channels=config["upsample_initial_channel"], out_channels=2,
        upsample_kernel_sizes=config["upsample_kernel_sizes"], upsample_factors=config["upsample_rates"],
        resnet_kernel_sizes=config["resblock_kernel_sizes"], resnet_dilations=config["resblock_dilation_sizes"],
        act_fn="snakebeta" if amp else "leaky_relu", leaky_relu_negative_slope=0.1, antialias=amp,
        final_act_fn=final, final_bias=config.get("use_bias_at_final", True),
        output_sampling_rate=config.get("output_sampling_rate", 24000),
    )  # fmt: skip


def diffusers_upsampler_config(config: dict) -> dict:
    return dict(
        in_channels=config["in_channels"], mid_channels=config["mid_channels"],
        num_blocks_per_stage=config["num_blocks_per_stage"], dims=config["dims"],
        spatial_upsample=config["spatial_upsample"], temporal_upsample=config["temporal_upsample"],
        rational_spatial_scale=config["spatial_scale"], use_rational_resampler=config["rational_resampler"],
    )  # fmt: skip


DIFFUSION_VAE_CLASS = "CausalDiffusionVAE"
"""`config.vae._class_name` of a diffusion video VAE file; ltx-core 1.2.0 builds a conv decoder for any other
(`is_diffusion_video_vae`: `CausalVideoAutoencoder`, the default)."""


def tiny_diffusion_vae_config(vae: dict) -> dict:
    """The `config.vae` metadata of a tiny diffusion VAE file, in ltx-core 1.2.0's nested form (model_configurator.py:
    the encoder under `encoder`, the decoder under `decoder`, `model_output_type` beside them); the encoder is the
    conv file's (`vae`, its flat config)."""
    encoder = dict(dims=vae["dims"], in_channels=vae["in_channels"], out_channels=vae["latent_channels"],
                   blocks=vae["encoder_blocks"], patch_size=vae["patch_size"], norm_layer=vae["norm_layer"],
                   latent_log_var=vae["latent_log_var"], spatial_padding_mode=vae["spatial_padding_mode"])  # fmt: skip
    decoder = {"in_channels": vae["latent_channels"], **TINY_DIFFUSION_DECODER}
    return {"_class_name": DIFFUSION_VAE_CLASS, "model_output_type": "x0", "encoder": encoder, "decoder": decoder}


# --- key maps ----------------------------------------------------------------------------------------------------------

TRANSFORMER_PREFIX = "model.diffusion_model."
_CONNECTOR_PREFIXES = {"video_connector.": "video_embeddings_connector.", "audio_connector.": "audio_embeddings_connector."}
_TEXT_PROJECTIONS = {"text_proj_in.": "text_embedding_projection.aggregate_embed.",
                     "video_text_proj_in.": "text_embedding_projection.video_aggregate_embed.",
                     "audio_text_proj_in.": "text_embedding_projection.audio_aggregate_embed."}  # fmt: skip
MAIN_COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder")
_PREFIXES = {"vae": "vae.", "audio_vae": "audio_vae.", "vocoder": "vocoder."}

# diffusers name -> official name, applied in this order (each is the inverse of one rename in diffusers'
# convert_ltx2_transformer_to_diffusers; the official names are those of ltx-core's LTXModel).
_TRANSFORMER_TO_OFFICIAL = (
    (r"^time_embed\.", "adaln_single."),
    (r"^audio_time_embed\.", "audio_adaln_single."),
    (r"^(audio_)?prompt_adaln\.", r"\1prompt_adaln_single."),
    (r"^(audio_)?proj_in\.", r"\1patchify_proj."),
    (r"^av_cross_attn_video_scale_shift\.", "av_ca_video_scale_shift_adaln_single."),
    (r"^av_cross_attn_video_a2v_gate\.", "av_ca_a2v_gate_adaln_single."),
    (r"^av_cross_attn_audio_scale_shift\.", "av_ca_audio_scale_shift_adaln_single."),
    (r"^av_cross_attn_audio_v2a_gate\.", "av_ca_v2a_gate_adaln_single."),
    (r"\.video_a2v_cross_attn_scale_shift_table$", ".scale_shift_table_a2v_ca_video"),
    (r"\.audio_a2v_cross_attn_scale_shift_table$", ".scale_shift_table_a2v_ca_audio"),
    (r"\.norm_q\.", ".q_norm."),
    (r"\.norm_k\.", ".k_norm."),
)
_CONNECTOR_TO_OFFICIAL = ((r"\.transformer_blocks\.", ".transformer_1d_blocks."), (r"\.norm_q\.", ".q_norm."),
                          (r"\.norm_k\.", ".k_norm."))  # fmt: skip
_GENERATOR = r"^((?:vocoder\.|bwe_generator\.)?)"  # the LTX-2.3 vocoder holds two generators
_VOCODER_TO_OFFICIAL = ((_GENERATOR + r"upsamplers\.", r"\1ups."), (_GENERATOR + r"resnets\.", r"\1resblocks."),
                        (_GENERATOR + r"conv_in\.", r"\1conv_pre."), (_GENERATOR + r"conv_out\.", r"\1conv_post."),
                        (_GENERATOR + r"act_out\.", r"\1act_post."), (r"\.downsample\.filter$", ".downsample.lowpass.filter"))  # fmt: skip
_VAE_STATISTICS = (("latents_mean", "per_channel_statistics.mean-of-means"),
                   ("latents_std", "per_channel_statistics.std-of-means"))  # fmt: skip


def _rename(key: str, rules) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def _video_vae_to_official(key: str, config: dict) -> list[str]:
    """Official names of one diffusers video-VAE key (the latent statistics are stored once per half)."""
    for ours, theirs in _VAE_STATISTICS:
        if key == ours:
            return [f"encoder.{theirs}", f"decoder.{theirs}"]
    half, rest = key.split(".", 1)
    rest = rest.replace("resnets.", "res_blocks.")
    if half == "encoder":
        # diffusers down_blocks.i: gap i's res_x, then compression i; its mid block: the last gap's res_x
        res_blocks, compressions = _official_block_indices(config["layers_per_block"])
        match = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.(.*)", rest)
        if match:
            return [f"encoder.down_blocks.{compressions[int(match[1])]}.{match[2]}"]
        match = re.match(r"down_blocks\.(\d+)\.(.*)", rest)
        if match:
            return [f"encoder.down_blocks.{res_blocks[int(match[1])]}.{match[2]}"]
        if rest.startswith("mid_block."):
            return [f"encoder.down_blocks.{res_blocks[-1]}.{rest.removeprefix('mid_block.')}"]
        return [f"encoder.{rest}"]
    # decoder (running order): the mid block is gap 0's res_x; diffusers up_blocks.i: compression i, then gap i+1's
    res_blocks, compressions = _official_block_indices(list(reversed(config["decoder_layers_per_block"])))
    if rest.startswith("mid_block."):
        return [f"decoder.up_blocks.{res_blocks[0]}.{rest.removeprefix('mid_block.')}"]
    match = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", rest)
    if match:
        return [f"decoder.up_blocks.{compressions[int(match[1])]}.{match[2]}"]
    match = re.match(r"up_blocks\.(\d+)\.(.*)", rest)
    if match:
        return [f"decoder.up_blocks.{res_blocks[int(match[1]) + 1]}.{match[2]}"]
    return [f"decoder.{rest}"]


def _audio_vae_to_official(key: str) -> list[str]:
    for ours, theirs in _VAE_STATISTICS:
        if key == ours:
            return [f"encoder.{theirs}", f"decoder.{theirs}"]
    return [key]


def to_official(component: str, state_dict: dict[str, torch.Tensor], config: dict | None = None) -> dict[str, torch.Tensor]:
    """A diffusers component's state dict under its names in Lightricks' main checkpoint (or upsampler file).

    `config` is the diffusers component's config (the video VAE's layout decides its block numbering)."""
    official = {}
    for key, value in state_dict.items():
        if component == "transformer":
            names = [TRANSFORMER_PREFIX + _rename(key, _TRANSFORMER_TO_OFFICIAL)]
        elif component == "connectors":
            projection = next((prefix for prefix in _TEXT_PROJECTIONS if key.startswith(prefix)), None)
            if projection:
                names = [_TEXT_PROJECTIONS[projection] + key.removeprefix(projection)]
            else:
                ours = next(prefix for prefix in _CONNECTOR_PREFIXES if key.startswith(prefix))
                rest = _rename("." + key.removeprefix(ours), _CONNECTOR_TO_OFFICIAL)[1:]
                names = [TRANSFORMER_PREFIX + _CONNECTOR_PREFIXES[ours] + rest]
        elif component == "vae":
            names = ["vae." + name for name in _video_vae_to_official(key, config)]
        elif component == "audio_vae":
            names = ["audio_vae." + name for name in _audio_vae_to_official(key)]
        elif component == "vocoder":
            names = ["vocoder." + _rename(key, _VOCODER_TO_OFFICIAL)]
        elif component == "latent_upsampler":
            names = [key]
        else:
            raise ValueError(f"unknown component {component!r}")
        for name in names:
            official[name] = value
    return official


# diffusers name -> official name in the diffusion VAE file (the inverse of ltx-core 1.2.0's
# DIFFUSION_VAE_DECODER_COMFY_KEYS_FILTER; q, k and v are stored fused as `qkv`, in that order).
_DIFFUSION_DECODER_TO_OFFICIAL = ((r"\.attn\.to_out\.0\.", ".attn.proj."), (r"\.attn\.norm_q\.", ".attn.q_norm."),
                                  (r"\.attn\.norm_k\.", ".attn.k_norm."),
                                  (r"^t_embedder\.timestep_embedder\.linear_1\.", "t_embedder.mlp.0."),
                                  (r"^t_embedder\.timestep_embedder\.linear_2\.", "t_embedder.mlp.2."))  # fmt: skip
_QKV = re.compile(r"\.attn\.to_([qkv])\.(weight|bias)$")
_GATES = ((".attn.proj.", ".gate_msa"), (".mlp.w_down.", ".gate_mlp"), (".context_proj.", ".gate_ctx"))
"""Static gates a standalone (distilled) diffusion VAE may carry, and the linear each is folded into (ltx-core's
`_GATE_FOLD_TARGETS`)."""


def diffusion_decoder_name(key: str) -> tuple[str, int | None]:
    """The official name of one LTX2VideoDiffusionDecoderModel tensor, and for q, k or v its third of `qkv`."""
    for ours, theirs in _VAE_STATISTICS:
        if key == ours:
            return f"vae.decoder.{theirs}", None
    rest = _rename(key.removeprefix("decoder."), _DIFFUSION_DECODER_TO_OFFICIAL)
    match = _QKV.search(rest)
    if match:
        return f"vae.decoder.{rest[: match.start()]}.attn.qkv.{match[2]}", "qkv".index(match[1])
    return f"vae.decoder.{rest}", None


def diffusion_decoder_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An LTX2VideoDiffusionDecoderModel's state dict under its names in the diffusion VAE file."""
    import torch

    official, thirds = {}, {}
    for key, value in state_dict.items():
        name, third = diffusion_decoder_name(key)
        if third is None:
            official[name] = value
        else:
            thirds.setdefault(name, [None] * 3)[third] = value
    return {**official, **{name: torch.cat(parts) for name, parts in thirds.items()}}


def load_diffusion_decoder(path: Path, dtype: torch.dtype):
    """LTX-2.5's diffusion video decoder (diffusers' LTX2VideoDiffusionDecoderModel) from a diffusion VAE file: built
    from its `config.vae`, each tensor read under its official name, static gates folded in as ltx-core does; the
    encoder and the preview head (`coarse_*`) it may also hold are not read."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import LTX2VideoDiffusionDecoderModel
    from safetensors import safe_open

    vae = _metadata_config(path).get("vae", {})
    if vae.get("_class_name") != DIFFUSION_VAE_CLASS:
        raise ValueError(f"{path} is a {vae.get('_class_name', 'CausalVideoAutoencoder')!r} video VAE, not a "
                         f"{DIFFUSION_VAE_CLASS!r} one (the diffusion decoder's)")  # fmt: skip
    with init_empty_weights(include_buffers=False):
        decoder = LTX2VideoDiffusionDecoderModel(**diffusers_diffusion_decoder_config(vae))
    with safe_open(str(path), "pt") as file:
        stored = set(file.keys())
        state, missing = {}, []
        for key in decoder.state_dict():
            official_name, third = diffusion_decoder_name(key)
            name = _stored_name([official_name], stored)
            if name is None:
                missing.append(official_name)
                continue
            tensor = file.get_tensor(name)
            tensor = tensor if third is None else tensor.chunk(3)[third]
            gate = next((name.split(linear)[0] + suffix for linear, suffix in _GATES if linear in name), None)
            if gate in stored:
                scale = file.get_tensor(gate).float()
                tensor = ((scale[:, None] if tensor.ndim == 2 else scale) * tensor.float()).to(tensor.dtype)
            state[key] = tensor
    if missing:
        raise KeyError(f"{path} lacks {len(missing)} diffusion decoder tensor(s), e.g. {missing[:3]}")
    decoder.load_state_dict(state, strict=True, assign=True)
    return torch.nn.Module.to(decoder, dtype).eval()


_SHARED_STATISTICS = re.compile(r"^(vae|audio_vae)\.(?:encoder|decoder)\.per_channel_statistics\.")


def _stored_name(names: list[str], stored: set[str]) -> str | None:
    """The first of a tensor's official names that the file holds. A VAE's latent statistics may also be kept once for
    both halves, as `vae.per_channel_statistics.*` / `audio_vae.per_channel_statistics.*` (Lightricks' released files;
    ltx-core's key filters and diffusers' checkpoint detection accept both namings)."""
    candidates = [*names, *(_SHARED_STATISTICS.sub(r"\1.per_channel_statistics.", name) for name in names)]
    return next((name for name in candidates if name in stored), None)


def _from_official(component: str, module: torch.nn.Module, checkpoint, config: dict | None = None) -> None:
    """Fill `module` (a diffusers component built from the checkpoint's config) from `checkpoint`: every one of its
    parameters and buffers must be there under its official name, with its shape."""
    own, stored = module.state_dict(), set(checkpoint.keys())
    state, missing = {}, []
    for key in own:
        names = to_official(component, {key: None}, config)
        name = _stored_name(list(names), stored)
        if name is None:
            missing.append(next(iter(names)))
            continue
        state[key] = checkpoint.get_tensor(name)
    if missing:
        raise KeyError(f"the checkpoint lacks {len(missing)} {component} tensor(s), e.g. {missing[:3]}")
    module.load_state_dict(state, strict=True, assign=True)


# --- Gemma: the folder keeps the pre-4.52 transformers key layout ----------------------------------------------------

_GEMMA_TO_OFFICIAL = (("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower.vision_model."),
                      ("model.multi_modal_projector.", "multi_modal_projector."))  # fmt: skip


def gemma_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    official = {}
    for key, value in state_dict.items():
        if key == "lm_head.weight":
            continue  # tied to the token embeddings
        for ours, theirs in _GEMMA_TO_OFFICIAL:
            if key.startswith(ours):
                official[theirs + key.removeprefix(ours)] = value
                break
        else:
            raise KeyError(f"unexpected Gemma tensor {key}")
    return official


# --- LTX-2.5: the Gemma 4 text encoder file and the duration head ---------------------------------------------------

_GEMMA4_TO_COMFY = (("model.language_model.", "model."), ("model.vision_embedder.", "vision_model."),
                    ("model.embed_vision.", "multi_modal_projector."), ("model.embed_audio.", "audio_projector."))  # fmt: skip
"""transformers' gemma4_unified names -> the text encoder file's (ltx-core 1.2.0 `_flatten_gemma4_unified_keys_for_comfy`:
ComfyUI's flat LM layout, which its packer writes by default and its loader detects)."""
GEMMA_CONFIG_KEY, TOKENIZER_TENSOR, ASSET_PREFIX = "gemma_config", "tokenizer_json", "hf_asset__"
"""Where the text encoder file keeps the HF config (metadata), tokenizer.json and the sidecars (uint8 tensors)
(ltx-core 1.2.0 gemma_assets.py)."""
_GEMMA4_PROCESSOR = {"processor_class": "Gemma4UnifiedProcessor",
                     "image_processor": {"image_processor_type": "Gemma4UnifiedImageProcessor"},
                     "video_processor": {"video_processor_type": "Gemma4UnifiedVideoProcessor"},
                     "feature_extractor": {"feature_extractor_type": "Gemma4UnifiedAudioFeatureExtractor"}}  # fmt: skip
"""The processor sidecar ltx-core requires (`processor_config.json`; used only to enhance prompts, which the 2.5
encoder was not trained for): the class names only, the real file's settings are not in our sources [U]."""


def _bytes_tensor(data: bytes) -> torch.Tensor:
    import torch

    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def pack_gemma4(text_encoder, tokenizer) -> tuple[dict[str, torch.Tensor], str]:
    """A Gemma 4 text encoder as the one-file text encoder (tensors, `gemma_config` JSON), as ltx-core 1.2.0's
    `build_text_encoder_tensors_from_gemma_root` packs an HF folder: ComfyUI's flat keys, tokenizer.json and the
    sidecars as byte tensors, the config (with its `gemma_version`) in the metadata."""
    import tempfile

    tensors = {}
    for key, value in text_encoder.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied to the token embeddings
        tensors[_rename_prefix(key, _GEMMA4_TO_COMFY)] = value
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        tensors[TOKENIZER_TENSOR] = _bytes_tensor((Path(folder) / "tokenizer.json").read_bytes())
        for path in Path(folder).glob("*.json"):
            if path.name != "tokenizer.json":
                tensors[ASSET_PREFIX + path.name] = _bytes_tensor(path.read_bytes())
    tensors[ASSET_PREFIX + "processor_config.json"] = _bytes_tensor(json.dumps(_GEMMA4_PROCESSOR).encode())
    return tensors, json.dumps(_gemma4_config_for_ltx_core(text_encoder.config.to_dict()))


def _gemma4_config_for_ltx_core(config: dict) -> dict:
    """The config as transformers before 5.15 writes it (ltx-core 1.2.0 pins transformers < 5.15): the global
    layers' wider heads as `global_head_dim`, which later releases fold into `per_layer_config` (a form 5.14 refuses:
    AmbiguousGlobalPerLayerAttributeError on `head_dim`). transformers 5.24 reads both."""
    text = dict(config["text_config"])
    per_layer = text.pop("per_layer_config", None) or {}
    full = [index for index, kind in enumerate(text["layer_types"]) if kind == "full_attention"]
    widths = {json.dumps(per_layer.get(str(index), {})) for index in full}
    if set(per_layer) - {str(index) for index in full} or len(widths) != 1 or set(per_layer.get(str(full[0]), {})) - {"head_dim"}:
        raise ValueError(f"Gemma 4 per-layer config {per_layer} is not just the global layers' head_dim")
    text["global_head_dim"] = per_layer[str(full[0])]["head_dim"] if per_layer else text["head_dim"]
    return {**config, "text_config": text}


def _rename_prefix(key: str, pairs) -> str:
    for old, new in pairs:
        if key.startswith(old):
            return new + key.removeprefix(old)
    return key


def load_gemma4(path: Path, dtype: torch.dtype):
    """The text encoder (transformers' Gemma4UnifiedForConditionalGeneration) and its tokenizer from a one-file text
    encoder; the stamp `gemma_version` must be the one the transformer file names (as ltx-core checks)."""
    import torch
    from accelerate import init_empty_weights
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration, PreTrainedTokenizerFast

    with safe_open(str(path), "pt") as file:
        metadata = file.metadata() or {}
        if GEMMA_CONFIG_KEY not in metadata or TOKENIZER_TENSOR not in file.keys():
            raise ValueError(f"{path} has no {GEMMA_CONFIG_KEY!r} metadata or {TOKENIZER_TENSOR!r} tensor: not an "
                             "LTX-2.5 text encoder file")  # fmt: skip
        config = Gemma4UnifiedConfig.from_dict(json.loads(metadata[GEMMA_CONFIG_KEY]))
        with init_empty_weights(include_buffers=False):
            model = Gemma4UnifiedForConditionalGeneration(config)
        inverse = tuple((new, old) for old, new in _GEMMA4_TO_COMFY)
        stored = {_rename_prefix(key, inverse): key for key in file.keys()
                  if key != TOKENIZER_TENSOR and not key.startswith(ASSET_PREFIX)
                  and not key.startswith("text_embedding_projection.")}  # fmt: skip
        state = {}
        for key in model.state_dict():
            name = stored.get("model.language_model.embed_tokens.weight" if key == "lm_head.weight" else key)
            if name is None:
                raise KeyError(f"the text encoder file {path} lacks {key}")
            state[key] = file.get_tensor(name)
        model.load_state_dict(state, strict=True, assign=True)
        model.tie_weights()
        tokenizer_json = bytes(file.get_tensor(TOKENIZER_TENSOR).numpy())
        tokenizer_config = json.loads(bytes(file.get_tensor(ASSET_PREFIX + "tokenizer_config.json").numpy()))
    skip = {"tokenizer_class", "auto_map", "model_max_length", "backend", "processor_class", "added_tokens_decoder"}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json.decode()),
                                        model_max_length=1024,
                                        **{k: v for k, v in tokenizer_config.items() if k not in skip})  # fmt: skip
    return model.to(dtype).eval(), tokenizer


_DURATION_ATTENTION = "attention_pooler."


def duration_head_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' LTX2DurationHead state under ltx-core 1.2.0's `duration_head.*` names: its pooler is a
    torch.nn.MultiheadAttention (q, k, v stacked in `in_proj_*`, `out_proj`)."""
    import torch

    official = {}
    for key, value in state_dict.items():
        if not any(key.startswith(f"{_DURATION_ATTENTION}to_{p}.") for p in ("q", "k", "v", "out")):
            official["duration_head." + key] = value
    for kind in ("weight", "bias"):
        official[f"duration_head.{_DURATION_ATTENTION}cross_attn.in_proj_{kind}"] = torch.cat(
            [state_dict[f"{_DURATION_ATTENTION}to_{p}.{kind}"] for p in "qkv"])
        official[f"duration_head.{_DURATION_ATTENTION}cross_attn.out_proj.{kind}"] = state_dict[
            f"{_DURATION_ATTENTION}to_out.{kind}"]
    return official


def duration_head_from_official(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    ours = {}
    for key, value in tensors.items():
        key = key.removeprefix("duration_head.")
        attention = _DURATION_ATTENTION + "cross_attn."
        if key.startswith(attention + "in_proj_"):
            kind = key.removeprefix(attention + "in_proj_")
            for name, part in zip("qkv", value.chunk(3)):
                ours[f"{_DURATION_ATTENTION}to_{name}.{kind}"] = part
        elif key.startswith(attention + "out_proj."):
            ours[_DURATION_ATTENTION + "to_out." + key.removeprefix(attention + "out_proj.")] = value
        else:
            ours[key] = value
    return ours


# --- tiny weights in the official format -----------------------------------------------------------------------------

GEMMA_FOLDER = "gemma-3"
_GEMMA_PREPROCESSOR = {"image_processor_type": "Gemma3ImageProcessor", "processor_class": "Gemma3Processor",
                       "size": {"height": 32, "width": 32}, "do_resize": True, "do_normalize": True,
                       "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
                       "do_rescale": True, "rescale_factor": 1 / 255, "do_convert_rgb": True}  # fmt: skip


def _build_diffusers_modules(config: dict, upsampler_config: dict, gemma_layers: int) -> dict[str, torch.nn.Module]:
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    configs = diffusers_configs(config, gemma_layers)
    vocoder = LTX2VocoderWithBWE if "bwe" in config["vocoder"] else LTX2Vocoder
    classes = dict(transformer=LTX2VideoTransformer3DModel, connectors=LTX2TextConnectors, vae=AutoencoderKLLTX2Video,
                   audio_vae=AutoencoderKLLTX2Audio, vocoder=vocoder)  # fmt: skip
    modules = {name: cls(**configs[name]) for name, cls in classes.items()}
    modules["latent_upsampler"] = LTX2LatentUpsamplerModel(**diffusers_upsampler_config(upsampler_config))
    return modules


def _save(path: Path, tensors: dict[str, torch.Tensor], config: dict | None, **metadata: str) -> None:
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    if config is not None:
        metadata["config"] = json.dumps(config)
    # Lightricks ships bf16; the statistics buffers too (byte tensors, the text encoder's tokenizer and sidecars, stay).
    save_file({k: (v.detach().to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()},
              str(path), metadata=metadata)  # fmt: skip


def _official_lora(transformer) -> dict[str, torch.Tensor]:
    """A random LoRA on the transformer's attention projections in Lightricks' key format."""
    from peft import LoraConfig, get_peft_model_state_dict

    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )  # alpha = rank: ltx-core adds B @ A unscaled
    lora = {}
    for key, value in get_peft_model_state_dict(transformer).items():
        module, kind = key.rsplit(".lora_", 1)
        name = to_official("transformer", {module + ".weight": value})
        lora["diffusion_model." + next(iter(name)).removeprefix(TRANSFORMER_PREFIX).removesuffix(".weight")
             + ".lora_" + kind] = value  # fmt: skip
    return lora


def build_tiny_official(folder: Path, architecture: str = "ltx-2", seed: int = 0) -> Path:
    """Write tiny random weights of `architecture` to `folder` in Lightricks' own layout and format. LTX-2 and
    LTX-2.3: checkpoints/ (the distilled and the dev file: the same tiny tensors under both names),
    latent_upscale_models/, loras/ (the distilled LoRA in Lightricks' key format) and a Gemma folder. LTX-2.5: one
    file per component (`SPLIT_FILES`). Returns the folder."""
    import shutil

    import torch

    from .tiny import TINY_MARKER, _build_text_encoder, _build_tokenizer

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    torch.manual_seed(seed)
    tokenizer = _build_tokenizer()
    text_encoder = _build_text_encoder(len(tokenizer), architecture)
    text_config = text_encoder.config.text_config
    config = tiny_official_config(architecture, text_config.hidden_size)
    modules = _build_diffusers_modules(config, tiny_upsampler_config(), text_config.num_hidden_layers)
    for vae in (modules["vae"], modules["audio_vae"]):  # not the identity, so that tests see (de)normalisation
        vae.latents_mean.normal_(0.0, 0.1)
        vae.latents_std.uniform_(0.5, 1.5)
    if architecture == "ltx-2.5":
        modules["diffusion_decoder"] = tiny_diffusion_decoder(modules["vae"])
    mel = getattr(modules["vocoder"], "mel_stft", None)
    if mel is not None:  # the BWE's STFT and mel bases are checkpoint buffers (zeros until loaded): random here too
        for buffer in (mel.mel_basis, mel.stft_fn.forward_basis, mel.stft_fn.inverse_basis):
            buffer.uniform_(0.0, 0.1)
    official = {name: to_official(name, modules[name].state_dict(), modules[name].config) for name in MAIN_COMPONENTS}
    if architecture == "ltx-2.5":
        _write_split(staging, config, official, modules, text_encoder, tokenizer)
    else:
        _write_single_files(staging, architecture, config, official, modules, text_encoder, tokenizer)
    marker = {"format": "official", "architecture": architecture, "seed": seed}
    (staging / TINY_MARKER).write_text(json.dumps(marker) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _write_single_files(staging: Path, architecture: str, config: dict, official: dict, modules: dict, text_encoder,
                        tokenizer) -> None:  # fmt: skip
    distilled, dev, upsampler_file, lora_file = TINY_FILES[architecture]
    main = {key: value for tensors in official.values() for key, value in tensors.items()}
    for name in (distilled, dev):
        _save(staging / CHECKPOINTS / name, main, config)
    _save(staging / UPSCALERS / upsampler_file, modules["latent_upsampler"].state_dict(), tiny_upsampler_config())
    _save(staging / LORAS / lora_file, _official_lora(modules["transformer"]), {})

    gemma = staging / GEMMA_FOLDER
    gemma.mkdir()
    text_encoder.config.save_pretrained(gemma)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in gemma_to_official(text_encoder.state_dict()).items()},
              str(gemma / "model.safetensors"))  # fmt: skip
    # Gemma 3's image tokens, which the official processor looks up; their ids are the tiny text encoder's last three.
    image_tokens = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tokenizer.add_tokens(list(image_tokens.values()), special_tokens=True)
    tokenizer.save_pretrained(gemma)
    tokenizer_config = json.loads((gemma / "tokenizer_config.json").read_text())
    tokenizer_config["extra_special_tokens"] = image_tokens
    (gemma / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    # ltx-core looks the tokenizer folder up by this file name; the tokenizer itself is read from tokenizer.json.
    (gemma / "tokenizer.model").write_bytes(b"")
    (gemma / "preprocessor_config.json").write_text(json.dumps(_GEMMA_PREPROCESSOR, indent=2) + "\n")


def _write_split(staging: Path, config: dict, official: dict, modules: dict, text_encoder, tokenizer) -> None:
    """LTX-2.5's split files (`SPLIT_FILES`), laid out and keyed as ltx-core 1.2.0 reads them in split mode
    (`ModelPaths.from_split`): each component's tensors under the monolith's names, each file's `config` metadata
    holding the sections its configurator reads."""
    from .tiny import _build_duration_head

    transformer_file = {**official["transformer"],
                        **{k: v for k, v in official["connectors"].items() if k.startswith(TRANSFORMER_PREFIX)}}  # fmt: skip
    projection = {k: v for k, v in official["connectors"].items() if not k.startswith(TRANSFORMER_PREFIX)}
    stamp = dict(model_version=SPLIT_MODEL_VERSION, gemma_source_checkpoint=json.dumps({"gemma_version": GEMMA4_VERSION}))
    for role in ("distilled", "dev"):
        _save(staging / SPLIT_FILES[role], transformer_file, {"transformer": config["transformer"]}, **stamp)
    tensors, gemma_config = pack_gemma4(text_encoder, tokenizer)
    _save(staging / SPLIT_FILES["text_encoder"], {**tensors, **projection}, None, format="pt", gemma_config=gemma_config)
    _save(staging / SPLIT_FILES["video_vae"], official["vae"], {"vae": config["vae"]})
    _save(staging / SPLIT_FILES["diffusion_vae"], {**{k: v for k, v in official["vae"].items() if k.startswith("vae.encoder.")},
                                                   **diffusion_decoder_to_official(modules["diffusion_decoder"].state_dict())},
          {"vae": tiny_diffusion_vae_config(config["vae"])})  # fmt: skip
    _save(staging / SPLIT_FILES["audio_vae"], {**official["audio_vae"], **official["vocoder"]},
          {"audio_vae": config["audio_vae"], "vocoder": config["vocoder"]})  # fmt: skip
    _save(staging / SPLIT_FILES["upsampler"], modules["latent_upsampler"].state_dict(), tiny_upsampler_config())
    _save(staging / SPLIT_FILES["lora"], _official_lora(modules["transformer"]), {})
    head = _build_duration_head()
    t = config["transformer"]
    head_config = {"transformer": {"cross_attention_dim": t["cross_attention_dim"],
                                   "audio_cross_attention_dim": t["audio_cross_attention_dim"]},
                   "duration_head": {"pooler_hidden_dim": head.config.pooler_hidden_dim,
                                     "num_queries": head.config.num_queries,
                                     "num_pooler_heads": head.config.num_pooler_heads,
                                     "mlp_hidden": head.config.mlp_hidden_dim}}  # fmt: skip
    _save(staging / SPLIT_FILES["duration_head"], duration_head_to_official(head.state_dict()), head_config)


# --- loading ---------------------------------------------------------------------------------------------------------

SCHEDULER_CONFIG = dict(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
                        max_image_seq_len=4096, shift_terminal=0.1)  # fmt: skip
"""The diffusers-format Lightricks/LTX-2 scheduler config (the single files carry none; the recipes set their own
sigmas)."""


def _one_file(folder: Path, pattern: str, what: str) -> Path:
    # bf16 files only: Lightricks' fp8 / fp4 / INT8-ConvRot files need their own kernels (ltx2-models.md 1.3, docs/memory.md)
    matches = sorted(path for path in folder.glob(pattern)
                     if not any(q in path.name for q in ("-fp8", "-fp4", "-int8")))  # fmt: skip
    if len(matches) != 1:
        found = ", ".join(path.name for path in matches) or "none"
        raise FileNotFoundError(f"{folder} must hold exactly one {what} ({pattern}); found {found}")
    return matches[0]


def official_files(folder: Path, dev: bool, diffusion_decoder: bool = False) -> dict[str, Path]:
    """The files one model needs from an official-layout folder: the dev or distilled checkpoint, the x2 spatial
    upsampler, the Gemma folder, and (dev only) the distilled LoRA; in a split folder (LTX-2.5) the transformer,
    text encoder, conv video VAE, audio VAE and duration head files instead of the checkpoint and Gemma folder, and
    with `diffusion_decoder` the diffusion VAE file too."""
    folder = Path(folder)

    def upsampler() -> Path:  # in the order a user would add the files, so the first missing one is named
        return _one_file(folder / UPSCALERS, "*spatial-upscaler-x2*.safetensors", "x2 spatial upsampler")

    if is_split_folder(folder):
        kind = "dev" if dev else "distilled"
        files = dict(
            transformer=_one_file(folder / DIFFUSION_MODELS, f"*-{kind}-transformer*.safetensors", f"{kind} transformer"),
            text_encoder=_one_file(folder / "text_encoders", "*.safetensors", "text encoder"),
            video_vae=_one_file(folder / "vae", "*video-vae-conv*.safetensors", "conv video VAE"),
            audio_vae=_one_file(folder / "vae", "*audio-vae*.safetensors", "audio VAE"),
            duration_head=_one_file(folder / "model_patches", "*duration-head*.safetensors", "duration head"),
            upsampler=upsampler(),
        )  # fmt: skip
        if diffusion_decoder:
            files["diffusion_vae"] = _one_file(folder / "vae", "*video-vae-bf16*.safetensors",
                                               "diffusion video VAE (or decode with --video-decoder conv)")  # fmt: skip
    else:
        files = dict(
            checkpoint=_one_file(folder / CHECKPOINTS, "*-dev*.safetensors" if dev else "*-distilled*.safetensors",
                                 "dev checkpoint" if dev else "distilled checkpoint"),
            upsampler=upsampler(),
            gemma=_one_file(folder, "*/tokenizer_config.json", "Gemma folder (with tokenizer_config.json)").parent,
        )  # fmt: skip
    if dev:
        files["lora"] = _one_file(folder / LORAS, "*distilled-lora*.safetensors", "distilled LoRA")
    return files


def _metadata_config(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as checkpoint:
        metadata = checkpoint.metadata() or {}
    if "config" not in metadata:
        raise ValueError(f"{path} has no 'config' metadata: not one of Lightricks' single-file checkpoints")
    return json.loads(metadata["config"])


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        return file.metadata() or {}


def load_official(folder: Path, dev: bool, dtype: torch.dtype):
    """An LTX2Pipeline and the latent upsampler from an official-layout folder (see the module docstring), plus the
    path of the distilled LoRA (dev only, else None). Nothing is downloaded (LTX-2.5's diffusion decoder:
    `load_diffusion_decoder`)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline
    from safetensors import safe_open
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    files = official_files(folder, dev)
    duration_head = None
    if "transformer" in files:  # split files: each component's tensors and config sections in its own file
        component_files = dict(transformer=files["transformer"], connectors=files["transformer"],
                               vae=files["video_vae"], audio_vae=files["audio_vae"], vocoder=files["audio_vae"])  # fmt: skip
        config = {}
        for path in dict.fromkeys(component_files.values()):
            config.update(_metadata_config(path))
        expected = json.loads(_metadata(files["transformer"]).get("gemma_source_checkpoint", "{}")).get("gemma_version")
        text_encoder, tokenizer = load_gemma4(files["text_encoder"], dtype)
        if expected != getattr(text_encoder.config, "gemma_version", None):
            raise ValueError(f"{files['text_encoder'].name} is Gemma version "
                             f"{getattr(text_encoder.config, 'gemma_version', None)!r}; the transformer needs "
                             f"{expected!r} (LTX-2.5 takes its fine-tuned Gemma 4, not stock Gemma)")  # fmt: skip
        component_files["connectors"] = (files["transformer"], files["text_encoder"])
    else:
        config = _metadata_config(files["checkpoint"])
        component_files = dict.fromkeys(MAIN_COMPONENTS, files["checkpoint"])
        text_encoder = Gemma3ForConditionalGeneration.from_pretrained(files["gemma"], dtype=dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(files["gemma"], local_files_only=True)
    # Parameters on the meta device (nothing allocated, nothing initialised: they are assigned from the files);
    # buffers real, since the ones not stored in the files (e.g. the BWE resampler's filter) are computed here.
    with init_empty_weights(include_buffers=False):
        modules = _build_diffusers_modules(
            config, _metadata_config(files["upsampler"]), text_encoder.config.text_config.num_hidden_layers
        )
    for name in MAIN_COMPONENTS:
        _from_official(name, modules[name], _Files(component_files[name]), modules[name].config)
    with safe_open(str(files["upsampler"]), "pt") as checkpoint:
        _from_official("latent_upsampler", modules["latent_upsampler"], checkpoint)
    for name, module in modules.items():
        # plain cast; the bandwidth-extension vocoder stays in float32, as officially (ltx2-models.md 2a item 4)
        keep_float32 = name == "vocoder" and "bwe" in config["vocoder"]
        torch.nn.Module.to(module, torch.float32 if keep_float32 else dtype).eval()
    if "duration_head" in files:
        duration_head = _load_duration_head(files["duration_head"], dtype)
    pipeline = LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG), text_encoder=text_encoder.eval(),
        tokenizer=tokenizer, duration_head=duration_head, **{name: modules[name] for name in MAIN_COMPONENTS},
    )  # fmt: skip
    return pipeline, modules["latent_upsampler"], files.get("lora")


class _Files:
    """The tensors of one or more safetensors files, read by name (a component of the split files may span two:
    the text connectors sit in the transformer file, their input projections in the text encoder file)."""

    def __init__(self, paths):
        from safetensors import safe_open

        self.files = [safe_open(str(path), "pt") for path in ([paths] if isinstance(paths, Path) else paths)]

    def keys(self):
        return [key for file in self.files for key in file.keys()]

    def get_tensor(self, name):
        return next(file.get_tensor(name) for file in self.files if name in file.keys())


def _load_duration_head(path: Path, dtype: torch.dtype):
    from diffusers.pipelines.ltx2 import LTX2DurationHead
    from safetensors.torch import load_file

    config = _metadata_config(path)
    head_config = config.get("duration_head", {})
    transformer = config.get("transformer", {})
    # ltx-core 1.2.0 DurationHeadConfigurator: the input widths from the transformer section, the rest (defaults
    # the JAX model's) from a `duration_head` section
    head = LTX2DurationHead(
        video_cross_attention_dim=transformer.get("cross_attention_dim", 4096),
        audio_cross_attention_dim=transformer.get("audio_cross_attention_dim", 2048),
        pooler_hidden_dim=head_config.get("pooler_hidden_dim", 256), num_queries=head_config.get("num_queries", 1),
        num_pooler_heads=head_config.get("num_pooler_heads", 4), mlp_hidden_dim=head_config.get("mlp_hidden", 256),
    )  # fmt: skip
    head.load_state_dict(duration_head_from_official(load_file(str(path))), strict=True)
    return head.to(dtype).eval()
