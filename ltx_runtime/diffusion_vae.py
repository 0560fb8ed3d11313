"""LTX-2.5's diffusion video VAE as data (no torch at import): its file's `config.vae` read into the arguments of
diffusers' `LTX2VideoDiffusionDecoderModel`, where a diffusers-layout folder keeps the decoder, and the tiny decoder
the tiny weights carry. The decode itself is diffusion_decode.py's; the file is read by official.py."""

from __future__ import annotations

import math

DIFFUSION_DECODER_FOLDER = "diffusion_decoder"
"""Where a diffusers-layout LTX-2.5 folder keeps the diffusion decoder (Lightricks/LTX-2.5-Diffusers; diffusers'
`LTX2VideoDiffusionDecoderModel`), which model_index.json does not list."""


TINY_DIFFUSION_DECODER = dict(
    out_channels=3, patch_size=4, head_dim=16, t_emb_dim=32, default_num_inference_steps=1,
    timestep_scale_multiplier=1000.0, stage_channels=[128, 64, 32, 32, 16], stage_depths=[1, 1, 1, 1, 2],
    stage_kernels=[[3, 1, 1], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
    upsamples=[[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 2]], stage5_kernel=[3, 5, 5],
)  # fmt: skip
"""The `decoder` section of a tiny diffusion VAE file (without `in_channels`, the latent width). The one x0 step at
a timestep scale of 1000 is the 2.5 file's as diffusers 0.42.1 converts it (LTX2VideoDiffusionDecoderModel's
defaults) [U: the released metadata is not in our sources]; the strides and channel reductions are the real ones;
the widths, depths and kernels are tiny (each stage a multiple of the 16-wide heads; stage 1 works on the latent grid,
2x4 latents for 64x128 px, so its window is one latent wide)."""


def diffusers_diffusion_decoder_config(vae: dict) -> dict:
    """LTX2VideoDiffusionDecoderModel's arguments from a diffusion VAE file's `config.vae`, read as ltx-core 1.2.0's
    `_build_diffusion_video_decoder` reads it: a key the file leaves out takes `DiffusionVideoDecoder`'s default."""
    decoder = vae.get("decoder", vae)
    upsamples = decoder.get("upsamples", [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 2]])
    channels = decoder.get("stage_channels", [1024, 512, 256, 256, 128])
    if decoder.get("stage5_channels", channels[-1]) != channels[-1]:
        raise ValueError("diffusion VAE: stage5_channels other than the last stage's width has no diffusers equivalent")
    strides = [tuple(stride) for stride, _ in upsamples]
    patch_size = decoder.get("patch_size", 4)
    return dict(
        out_channels=decoder.get("out_channels", 3), latent_channels=decoder.get("in_channels", vae.get("latent_channels", 128)),
        patch_size=patch_size, decoder_head_dim=decoder.get("head_dim", decoder.get("na_head_dim", 64)),
        decoder_stage_channels=tuple(channels), decoder_stage_depths=tuple(decoder.get("stage_depths", [4, 6, 4, 2, 8])),
        decoder_stage_kernels=tuple(tuple(k) for k in decoder.get("stage_kernels", [[3, 7, 7], [3, 7, 7], [3, 5, 5], [3, 5, 5]])[:4]),
        decoder_upsample_strides=tuple(strides), decoder_upsample_channel_reductions=tuple(r for _, r in upsamples),
        decoder_stage5_kernel=tuple(decoder.get("stage5_kernel", [3, 7, 7])), decoder_t_emb_dim=decoder.get("t_emb_dim", 384),
        decoder_timestep_scale_multiplier=float(decoder.get("timestep_scale_multiplier", 1.0)),
        decoder_model_output_type=vae.get("model_output_type", "v"),
        decoder_num_inference_steps=decoder.get("default_num_inference_steps", 2),
        spatial_compression_ratio=patch_size * math.prod(stride[1] for stride in strides),
        temporal_compression_ratio=math.prod(stride[0] for stride in strides),
    )  # fmt: skip


def tiny_diffusion_decoder(vae):
    """A tiny random LTX2VideoDiffusionDecoderModel for the conv VAE `vae` (diffusers'), whose latent space, and so
    whose statistics, it shares."""
    import torch
    from diffusers import LTX2VideoDiffusionDecoderModel

    decoder_config = {"in_channels": vae.config.latent_channels, **TINY_DIFFUSION_DECODER}
    decoder = LTX2VideoDiffusionDecoderModel(
        **diffusers_diffusion_decoder_config({"model_output_type": "x0", "decoder": decoder_config})
    )
    with torch.no_grad():
        for parameter in decoder.parameters():  # diffusers zero-initialises the modulation: random, so that it acts
            if not parameter.abs().sum():
                parameter.normal_(0.0, 0.2)
        decoder.latents_mean.copy_(vae.latents_mean)
        decoder.latents_std.copy_(vae.latents_std)
    return decoder.eval()
