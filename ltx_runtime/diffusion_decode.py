"""LTX-2.5's diffusion video decoder: diffusers' `LTX2VideoDiffusionDecoderModel`, with neighbourhood attention that
needs neither NATTEN nor a full score matrix.

LTX-2.5 ships two decoders for the same latents: the conv VAE (`vae/ltx-2.5-video-vae-conv-bf16.safetensors`) and
this one (`vae/ltx-2.5-video-vae-bf16.safetensors`, ltx-core 1.2.0's `DiffusionVideoDecoder`, "DiffVAE"), which the
official pipelines decode with by default: ltx-pipelines 1.2.0 takes whichever file `--video-vae-path` names, picks the
decoder kind from its `config.vae._class_name` (`CausalDiffusionVAE`), and its 2.5 commands name this file
(docs/installation.md). Stages 1-4 upsample the latents into a context volume with neighbourhood-attention blocks;
stage 5 predicts pixels from noise conditioned on it, in `decoder_num_inference_steps` steps (the 2.5 file: one x0
step, so the output depends on the noise drawn; ltx-pipelines docs/optimization.md "1-step from noise").

The attention: each query attends to a `kernel_size` window, centred and shifted inward at the borders so it always
holds `kernel_size` positions (NATTEN's `na3d`, and ltx-core 1.2.0's eager fallback `fallback_na/eager.py`, which the
official decoder uses when NATTEN is not installed). diffusers' default processor expresses that window as a
FlexAttention block mask; run eagerly (on the CPU, or without compiling) flex attention scores every query against
every key, which at stage 5 (a token per 4x4 pixels per frame) exceeds any host's memory even on tiny weights
(1 s of 128x64 video: 41 x 16 x 32 tokens, 1.7 GB of scores per head). `NeighborhoodAttnProcessor` gathers each
query's window instead, a tile of queries at a time (`GATHER_BUDGET`), so nothing outside the windows is scored. Same
semantics as the eager fallback (which tiles queries and masks the keys their windows do not cover), computed our own
way; tests/engine/test_diffusion_decoder.py checks it against diffusers' flex processor, scripts/ltx25_decoder_parity.py
against ltx-core's decoder.
"""

from __future__ import annotations

import math
import torch

GATHER_BUDGET = 2**24
"""Elements of the keys (and as many of the values) gathered for one tile of queries: each query's window, so a tile
holds `GATHER_BUDGET // (window x channels)` queries."""


def window_starts(positions: torch.Tensor, length: int, kernel: int) -> torch.Tensor:
    """Where the window of each position along one axis starts: centred, shifted inward at the borders."""
    return (positions - kernel // 2).clamp(0, length - kernel)


def neighborhood_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kernel_size, first_tile_only: bool = False
) -> torch.Tensor:
    """3D neighbourhood attention over `(B, T, H, W, heads, head_dim)` tensors, the query already scaled: a tile of
    queries at a time, each query's window of keys and values gathered, softmax over the window in float32.
    `first_tile_only`: attend the first tile and leave the rest of the output unset (memory_trace.py: on the meta
    device every tile allocates what the first does)."""
    batch, frames, height, width, heads, head_dim = query.shape
    kernels = [min(kernel, dim) for kernel, dim in zip(kernel_size, (frames, height, width))]
    window = math.prod(kernels)
    tokens = frames * height * width
    query, key, value = (tensor.reshape(batch, tokens, heads, head_dim) for tensor in (query, key, value))
    offsets = [torch.arange(kernel, device=query.device) for kernel in kernels]
    output = torch.empty_like(value)
    tile = max(1, GATHER_BUDGET // (window * heads * head_dim))
    for first in range(0, tile if first_tile_only else tokens, tile):
        last = min(first + tile, tokens)
        position = torch.arange(first, last, device=query.device)
        start_t = window_starts(position // (height * width), frames, kernels[0])
        start_h = window_starts(position // width % height, height, kernels[1])
        start_w = window_starts(position % width, width, kernels[2])
        index = (((start_t[:, None] + offsets[0]) * height * width)[:, :, None, None]
                 + ((start_h[:, None] + offsets[1]) * width)[:, None, :, None]
                 + (start_w[:, None] + offsets[2])[:, None, None, :]).reshape(len(position), window)  # fmt: skip
        keys, values = key[:, index], value[:, index]  # (B, queries, window, heads, head_dim)
        scores = torch.einsum("bqhd,bqkhd->bqhk", query[:, first:last].float(), keys.float())
        weights = scores.softmax(dim=-1).to(values.dtype)
        output[:, first:last] = torch.einsum("bqhk,bqkhd->bqhd", weights, values)
    return output.reshape(batch, frames, height, width, heads, head_dim)


class NeighborhoodAttnProcessor:
    """An attention processor for diffusers' `LTX2VideoVaeNeighborhoodAttention` (the decoder's every block):
    its own projections, norms and RoPE, then `neighborhood_attention` (of the first tile only with
    `first_tile_only`, for the memory trace). It takes no FlexAttention block mask."""

    def __init__(self, first_tile_only: bool = False):
        self.first_tile_only = first_tile_only

    def __call__(self, attn, hidden_states: torch.Tensor, block_mask=None) -> torch.Tensor:
        batch, frames, height, width, channels = hidden_states.shape
        query, key, value = attn.project_qkv(hidden_states)
        attended = neighborhood_attention(query, key, value.to(query.dtype), attn.kernel_size, self.first_tile_only)
        return attn.to_out[0](attended.reshape(batch, frames, height, width, channels).to(hidden_states.dtype))


def prepare(decoder, first_tile_only: bool = False) -> None:
    """Set a freshly loaded decoder up for serving: every neighbourhood-attention block gets the tiled processor (so
    no block masks get built: diffusers builds them only for its flex processor), and clips larger than one tile
    (768 x 768 px, 80 frames) decode in diffusers' overlapping tiles, stages 4 and 5 per tile (its defaults, "the
    reference implementation's"; ltx-pipelines sizes its tiles to the free GPU memory instead: docs/fidelity.md).
    `first_tile_only`: the attention of the memory trace (`neighborhood_attention`)."""
    from diffusers.models.autoencoders.ltx2_diffusion_decoder import LTX2VideoVaeNeighborhoodAttention

    for module in decoder.modules():
        if isinstance(module, LTX2VideoVaeNeighborhoodAttention):
            module.set_processor(NeighborhoodAttnProcessor(first_tile_only))
    decoder.enable_tiling()


def decode(decoder, latents: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Denormalized video latents [1, C, F, H, W] -> the decoded video [1, 3, F*8-7, H*32, W*32] in [-1, 1], the
    whole clip at once (diffusers' decode blends its tiles inside); the noise it denoises comes from `generator`."""
    with torch.inference_mode():
        return decoder.decode(latents.to(decoder.dtype), generator=generator, return_dict=False)[0]
