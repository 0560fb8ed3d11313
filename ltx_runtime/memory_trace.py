"""The GPU working memory of a clip's largest passes, traced on the meta device: the real full-size modules run on
tensors that have shapes but no data, so a machine without a GPU measures what admission.py's estimate must cover.

`PeakMemory` follows every tensor created while it is active (its storage's bytes, until the storage is freed) and
keeps the peak. Attention runs as the GPU kernels the engine uses do (flash-style cuDNN / FlashAttention: the output
and no N x N score matrix); on the meta device PyTorch would otherwise pick its math path and count those scores.
Weights are made before the trace and not counted: the figures are the activations of one pass.

- `denoising_peak`: one stage-2 transformer pass at full size (the widest pass of every recipe: four times stage 1's
  tokens, which the guided recipes batch twice) for text-to-video or image-to-video, whose first latent frame is
  kept clean with per-token timesteps, and with them per-token modulation tensors in every block.
- `decode_peak`: the streamed VAE decode (decode.py) with the official spatial and temporal tiles, or the larger
  ones the plan may pick.
- `diffusion_decode_peak`: LTX-2.5's diffusion decode (diffusion_decode.py), the whole clip at once in diffusers'
  tiles; its neighbourhood attention attends one tile of queries per pass (the others allocate alike, and tracing
  them all would take CPU-hours: 49 queries a tile at stage 5).

tests/engine/test_memory_trace.py compares admission.py's estimate with these for each recipe at 1080p and 4K.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from . import diffusion_decode
from .configs import TRANSFORMER, TRANSFORMER_BY_ARCHITECTURE, VIDEO_VAE, VIDEO_VAE_BY_ARCHITECTURE
from .decode import (
    OFFICIAL_TILES,
    TEMPORAL_TILE_FRAMES,
    TEMPORAL_TILE_OVERLAP,
    DecodeTiles,
    decode_video_chunks,
    tiling,
)
from .geometry import VAE_SPATIAL, GenerationPlan

META = torch.device("meta")
TEXT_TOKENS = 1024
"""Every prompt is padded to the pipeline's max_sequence_length."""


class PeakMemory(TorchDispatchMode):
    """Bytes of the tensor storages created inside the block that are alive at once, at most (`peak`)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                reference = StorageWeakRef(storage)
                self.live.setdefault(reference.cdata, (reference, storage.nbytes()))
        self.live = {key: entry for key, entry in self.live.items() if not entry[0].expired()}
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return out


class FlashLikeAttention(TorchFunctionMode):
    """scaled_dot_product_attention as a fused kernel allocates it: the output only."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            query = kwargs.get("query", args[0] if args else None)
            value = kwargs.get("value", args[2] if len(args) > 2 else None)
            return query.new_empty(*query.shape[:-1], value.shape[-1])
        return func(*args, **kwargs)


@lru_cache(maxsize=None)
def _transformer(architecture: str):
    from diffusers import LTX2VideoTransformer3DModel

    with META:
        config = {**TRANSFORMER, **TRANSFORMER_BY_ARCHITECTURE[architecture]}
        return LTX2VideoTransformer3DModel(**config).to(torch.bfloat16).eval()


@lru_cache(maxsize=None)
def _diffusion_decoder():
    """LTX-2.5's diffusion decoder at full size, as the engine sets it up (diffusion_decode.prepare): diffusers'
    defaults are the released decoder (catalog.DIFFUSION_DECODER_PARAMETERS)."""
    from diffusers import LTX2VideoDiffusionDecoderModel

    with META:
        decoder = LTX2VideoDiffusionDecoderModel().to(torch.bfloat16).eval()
    diffusion_decode.prepare(decoder, first_tile_only=True)
    return decoder


@lru_cache(maxsize=None)
def _vae(architecture: str):
    from diffusers import AutoencoderKLLTX2Video

    with META:
        vae = AutoencoderKLLTX2Video(**VIDEO_VAE, **VIDEO_VAE_BY_ARCHITECTURE[architecture]).to(torch.bfloat16).eval()
    vae.tile_sample_min_num_frames = TEMPORAL_TILE_FRAMES
    vae.tile_sample_stride_num_frames = TEMPORAL_TILE_FRAMES - TEMPORAL_TILE_OVERLAP
    return vae


def audio_latent_frames(plan: GenerationPlan) -> int:
    """25 audio latent frames per second of the generated clip (the pipeline rounds to the nearest)."""
    return round(plan.gen_frames / plan.fps * 25)


def denoising_peak(architecture: str, plan: GenerationPlan, image_to_video: bool) -> int:
    """Bytes of activations of one stage-2 transformer pass (batch 1, bf16) for `plan`."""
    transformer = _transformer(architecture)
    config = transformer.config
    frames, height, width = plan.latent_frames, plan.gen_height // VAE_SPATIAL, plan.gen_width // VAE_SPATIAL
    tokens, audio_frames = frames * height * width, audio_latent_frames(plan)
    video_text = config.caption_channels if config.use_prompt_embeddings else config.cross_attention_dim
    audio_text = config.caption_channels if config.use_prompt_embeddings else config.audio_cross_attention_dim
    bf16 = torch.bfloat16
    with META:
        inputs = dict(
            hidden_states=torch.empty(1, tokens, config.in_channels, dtype=bf16),
            audio_hidden_states=torch.empty(1, audio_frames, config.audio_in_channels, dtype=bf16),
            encoder_hidden_states=torch.empty(1, TEXT_TOKENS, video_text, dtype=bf16),
            audio_encoder_hidden_states=torch.empty(1, TEXT_TOKENS, audio_text, dtype=bf16),
            # Image-to-video: a timestep per token (0 on the clean first frame), as diffusers' pipeline passes it.
            timestep=torch.empty(1, tokens) if image_to_video else torch.empty(1),
            audio_timestep=torch.empty(1),
            sigma=torch.empty(1),
            encoder_attention_mask=torch.ones(1, TEXT_TOKENS, dtype=bf16),
            audio_encoder_attention_mask=torch.ones(1, TEXT_TOKENS, dtype=bf16),
        )
    inputs["video_coords"] = transformer.rope.prepare_video_coords(1, frames, height, width, META, fps=float(plan.fps))
    inputs["audio_coords"] = transformer.audio_rope.prepare_audio_coords(1, audio_frames, META)
    with torch.inference_mode(), FlashLikeAttention(), PeakMemory() as trace:
        transformer(**inputs, num_frames=frames, height=height, width=width, fps=float(plan.fps),
                    audio_num_frames=audio_frames, return_dict=False)  # fmt: skip
    return trace.peak


def decode_peak(architecture: str, plan: GenerationPlan, tiles: DecodeTiles = OFFICIAL_TILES) -> int:
    """Bytes of working memory of the streamed video VAE decode of `plan`'s latents with `tiles`."""
    vae = _vae(architecture)
    shape = (1, vae.config.latent_channels, plan.latent_frames, plan.gen_height // VAE_SPATIAL, plan.gen_width // VAE_SPATIAL)
    latents = torch.empty(shape, dtype=torch.bfloat16, device=META)
    with tiling(vae, plan.gen_height, plan.gen_width, tiles), FlashLikeAttention(), PeakMemory() as trace:
        for _ in decode_video_chunks(vae, latents):
            pass
    return trace.peak


def diffusion_decode_peak(plan: GenerationPlan) -> int:
    """Bytes of working memory of LTX-2.5's diffusion decode of `plan`'s latents (diffusion_decode.decode: diffusers'
    tiles, the whole clip's output at once), the neighbourhood attention's query tiles traced one per pass (each
    allocates alike)."""
    decoder = _diffusion_decoder()
    latent_size = (plan.latent_frames, plan.gen_height // VAE_SPATIAL, plan.gen_width // VAE_SPATIAL)
    latents = torch.empty(1, decoder.config.latent_channels, *latent_size, dtype=torch.bfloat16, device=META)
    with PeakMemory() as trace:
        diffusion_decode.decode(decoder, latents, None)
    return trace.peak
