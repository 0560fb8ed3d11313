"""The real checkpoints' architectures, built with random weights: for benchmarks and memory arithmetic, no download.

`build_full_size(architecture, device, dtype)` returns `Components` shaped exactly like the released weights, with the
parameters initialised in place on `device` (on "meta" nothing is allocated: the shapes are checked and counted, which
is what a machine without a GPU can do). Every model ships with a tiny tokenizer (ltx_runtime/tiny.py) because the
Gemma tokenizer is not bundled here; the pipeline pads every prompt to the same 1024 tokens either way.

The configurations are the released checkpoints' (ltx_runtime/configs.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch

from .configs import (
    AUDIO_VAE,
    CONNECTORS,
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
from .weights import Components


@contextmanager
def _default(device: torch.device | str, dtype: torch.dtype):
    """Create parameters directly on `device` in `dtype` (no float32 copy on the host first)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_full_size(architecture: str, device: torch.device | str = "meta", dtype: torch.dtype = torch.bfloat16) -> Components:
    """Random full-size components of `architecture` ("ltx-2": the 19B LTX-2, "ltx-2.3": the 22B LTX-2.3)."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors, LTX2Vocoder, LTX2VocoderWithBWE
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from .tiny import _build_tokenizer

    ltx23 = architecture == "ltx-2.3"
    with _default(device, torch.float32 if ltx23 else dtype):  # as load_components keeps it (FLOAT32_VOCODERS)
        vocoder = LTX2VocoderWithBWE(**VOCODER_2_3) if ltx23 else LTX2Vocoder(**VOCODER_2_0)
    with _default(device, dtype):
        text_encoder = Gemma3ForConditionalGeneration(
            Gemma3Config(text_config=GEMMA3_12B_TEXT, vision_config=GEMMA3_VISION, **GEMMA3_12B)
        )
        pipeline = LTX2Pipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
            vae=AutoencoderKLLTX2Video(**VIDEO_VAE, **VIDEO_VAE_BY_ARCHITECTURE[architecture]),
            audio_vae=AutoencoderKLLTX2Audio(**AUDIO_VAE),
            text_encoder=text_encoder,
            tokenizer=_build_tokenizer(),
            connectors=LTX2TextConnectors(**CONNECTORS, **CONNECTORS_BY_ARCHITECTURE[architecture]),
            transformer=LTX2VideoTransformer3DModel(**TRANSFORMER, **TRANSFORMER_BY_ARCHITECTURE[architecture]),
            vocoder=vocoder,
        )
        upsampler = LTX2LatentUpsamplerModel(**UPSAMPLER, **UPSAMPLER_BY_ARCHITECTURE[architecture])
    for module in (*pipeline.components.values(), upsampler):
        if isinstance(module, torch.nn.Module):
            module.eval()
    pipeline.set_progress_bar_config(disable=True)
    return Components(folder=Path(f"<random full-size {architecture}>"), pipeline=pipeline, latent_upsampler=upsampler)


@lru_cache(maxsize=None)
def parameter_counts(architecture: str) -> dict[str, int]:
    """Parameters per component of the real `architecture`, counted on the meta device (nothing is allocated)."""
    components = build_full_size(architecture, "meta")
    modules = {name: module for name, module in components.pipeline.components.items() if isinstance(module, torch.nn.Module)}
    modules["latent_upsampler"] = components.latent_upsampler
    return {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}
