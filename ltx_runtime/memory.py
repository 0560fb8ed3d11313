"""GPU memory: profiles that place the model's weights, an estimate of what a request needs, and admission control.

Three profiles, picked from the GPU's memory unless a setting names one:

- `resident` (80 GB cards and up): every module in bf16 on the GPU, nothing moves.
- `fp8` (~48 GB cards): the transformer's weights are stored in float8 (e4m3) and cast to bf16 layer by layer as they
  run (diffusers layerwise casting); the 12B text encoder lives in host memory and is streamed through the GPU layer
  by layer while the prompt is encoded (diffusers group offloading), so it occupies the GPU only during encoding.
- `low` (24 GB cards): as `fp8`, and the transformer's blocks are streamed from host memory too, one block ahead.

Estimates are arithmetic on the real parameter counts (catalog.PARAMETER_COUNTS) and the request's token count and
size; the activation constants per architecture (`ACTIVATIONS`) are measured by tracing the full-size modules on the
meta device (memory_trace.py; tests/test_memory_trace.py keeps them within 10 % above the traced peaks). A request
whose estimate exceeds the budget is refused before anything runs. docs/memory.md shows the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

from .catalog import PARAMETER_COUNTS, ModelSpec, Recipe
from .geometry import GenerationPlan

GIB = 1024**3


class MemoryProfile(str, Enum):
    RESIDENT = "resident"
    FP8 = "fp8"
    LOW = "low"


PROFILE_THRESHOLDS = ((MemoryProfile.RESIDENT, 75 * GIB), (MemoryProfile.FP8, 40 * GIB))
"""The smallest GPU each profile is chosen for (an "80 GB" card reports about 79 GiB); below 40 GiB: `low`."""
BUDGET_FRACTION = 0.92
"""Share of the GPU's memory a request may plan to use; the rest covers the CUDA context and fragmentation."""

KIB = 1024


@dataclass(frozen=True)
class Activations:
    """Working memory of an architecture's largest passes, bf16 inference, measured on the meta device at full size
    (memory_trace.py), rounded up by 2-4 %."""

    text_to_video: int
    """Bytes per video token of a stage-2 transformer pass: the residual stream, attention projections, the
    feed-forward's hidden layer, RoPE tables (attention itself is linear in memory with fused kernels)."""
    image_to_video: int
    """The same with a first frame: the pipeline passes a timestep per token, so every block's modulation (shift,
    scale and gate of each sub-layer) is per token too, not one vector for the clip."""
    decode_per_pixel: int
    """Bytes per generated pixel (width x height) of the streamed VAE decode with the official tiles: bounded by an
    80-frame temporal tile, not by the clip's length."""


ACTIVATIONS = {
    # traced: 144.5 / 328.5 KiB per token
    "ltx-2": Activations(text_to_video=148 * KIB, image_to_video=336 * KIB, decode_per_pixel=2560),
    # traced: 144.6 / 376.6 KiB per token (gated attention and cross-attention modulation add per-token tensors)
    "ltx-2.3": Activations(text_to_video=148 * KIB, image_to_video=384 * KIB, decode_per_pixel=2560),
    # traced: 144.6 / 376.6 KiB per token, as LTX-2.3 (the FFN biases it drops are weights, not activations)
    "ltx-2.5": Activations(text_to_video=148 * KIB, image_to_video=384 * KIB, decode_per_pixel=2560),
}
# The decode, traced with ltx-core's causal temporal tiles (each later tile starts one latent early): 2481 bytes per
# generated pixel at 1080p (4.8 GiB), 2506 at 4K (19.5 GiB); the same VAE in every architecture.
"""Per architecture (catalog.ModelSpec.architecture); a new architecture adds its measured entry here."""
TEXT_ENCODER_STREAMING_BYTES = 2 * GIB
"""GPU memory of a streamed text encoder while it encodes: the layers in flight and the embedding table."""
TRANSFORMER_BLOCKS = 48
STREAMED_BLOCKS = 2
"""Blocks of a streamed transformer on the GPU at once: the running one and the one being copied in."""


def choose_profile(total_bytes: int) -> MemoryProfile:
    for profile, minimum in PROFILE_THRESHOLDS:
        if total_bytes >= minimum:
            return profile
    return MemoryProfile.LOW


@dataclass(frozen=True)
class MemoryEstimate:
    tokens: int
    """Video tokens in the largest transformer pass (stage 2: latent frames x H/32 x W/32)."""
    encoding: int
    denoising: int
    decoding: int
    frugal: bool
    """Whether the clip fits the budget only with the text encoder off the GPU after encoding and a resident
    transformer off it during the decode (the engine's frugal mode)."""

    @property
    def peak(self) -> int:
        return max(self.encoding, self.denoising, self.decoding)


def video_tokens(plan: GenerationPlan, recipe: Recipe) -> int:
    """Tokens of the widest transformer pass: stage 2 at full size, or stage 1 when guidance batches the
    conditional and unconditional passes together (half the size, a quarter of the tokens, twice the batch)."""
    stage_1 = plan.latent_frames * (plan.stage1_height // 32) * (plan.stage1_width // 32)
    return max(stage_1 * (1 if recipe is Recipe.FAST else 2), plan.stage2_tokens)


def estimate(
    spec: ModelSpec, plan: GenerationPlan, profile: MemoryProfile, budget: int | None = None, image_to_video: bool = False
) -> MemoryEstimate:
    """GPU bytes `plan` needs under `profile` for `spec`'s real weights, phase by phase; `image_to_video`: the clip
    starts from a first-frame image (per-token timesteps)."""
    params = PARAMETER_COUNTS[spec.architecture]
    bf16 = 2
    transformer = params["transformer"] * (bf16 if profile is MemoryProfile.RESIDENT else 1)
    if profile is MemoryProfile.LOW:
        transformer = transformer * STREAMED_BLOCKS // TRANSFORMER_BLOCKS
    others = sum(count for name, count in params.items() if name not in ("transformer", "text_encoder")) * bf16
    text_encoder = params["text_encoder"] * bf16 if profile is MemoryProfile.RESIDENT else 0
    tokens = video_tokens(plan, spec.recipe)
    resident = transformer + others + text_encoder
    encoding = resident + (0 if profile is MemoryProfile.RESIDENT else TEXT_ENCODER_STREAMING_BYTES)
    activations = ACTIVATIONS[spec.architecture]
    per_token = activations.image_to_video if image_to_video else activations.text_to_video
    denoising = resident + tokens * per_token
    decoding = resident + plan.gen_width * plan.gen_height * activations.decode_per_pixel
    frugal = budget is not None and max(encoding, denoising, decoding) > budget
    if frugal:  # the text encoder leaves the GPU after encoding, a resident transformer during the decode
        denoising -= text_encoder
        decoding -= text_encoder + (0 if profile is MemoryProfile.LOW else transformer)
    return MemoryEstimate(tokens, encoding, denoising, decoding, frugal)


@dataclass(frozen=True)
class HostMemory:
    loading: int
    """Host bytes while a model loads: every component is read into host memory in bf16 before `place` puts it
    where the profile keeps it, whatever the profile."""
    serving: int
    """Host bytes the weights keep afterwards: the streamed modules (the text encoder in bf16; under `low` the
    transformer too, in its fp8 storage)."""


def host_memory(spec: ModelSpec, profile: MemoryProfile) -> HostMemory:
    """The host RAM `spec`'s real weights take under `profile` (the process's own few GiB come on top)."""
    params = PARAMETER_COUNTS[spec.architecture]
    loading = sum(params.values()) * 2
    serving = 0
    if profile is not MemoryProfile.RESIDENT:
        serving += params["text_encoder"] * 2
    if profile is MemoryProfile.LOW:
        serving += params["transformer"]
    return HostMemory(loading, serving)


FP8_STORAGE = torch.float8_e4m3fn
LAYERWISE_CASTING_SKIP = ("pos_embed", "patch_embed", "norm", "^proj_in$", "^proj_out$", "lora_")
"""diffusers' default skips plus the LoRA matrices, which peft reads the dtype of before their casting hook runs."""


def place(components, profile: MemoryProfile, device: torch.device, compute_dtype: torch.dtype) -> None:
    """Put freshly loaded modules where `profile` keeps them (once per load; the casting and offload hooks stay)."""
    from diffusers.hooks import apply_group_offloading

    pipeline = components.pipeline
    streamed = set()
    if profile is not MemoryProfile.RESIDENT:
        pipeline.transformer.enable_layerwise_casting(
            storage_dtype=FP8_STORAGE, compute_dtype=compute_dtype, skip_modules_pattern=LAYERWISE_CASTING_SKIP
        )
        # Gemma has no block list at its top level, so it streams leaf by leaf; CUDA streams copy ahead of use.
        apply_group_offloading(pipeline.text_encoder, onload_device=device, offload_type="leaf_level", use_stream=device.type == "cuda")
        streamed.add("text_encoder")
    if profile is MemoryProfile.LOW:
        pipeline.transformer.enable_group_offload(
            onload_device=device, offload_type="block_level", num_blocks_per_group=1, use_stream=device.type == "cuda"
        )
        streamed.add("transformer")
    modules = {**pipeline.components, "latent_upsampler": components.latent_upsampler}
    for name, module in modules.items():
        if isinstance(module, torch.nn.Module) and name not in streamed:
            module.to(device)


def free_cached_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gpu_memory_bytes(device: torch.device) -> int | None:
    """The GPU's total memory, or None on the CPU (no budget applies)."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory


def budget_for(total_bytes: int | None, budget_gib: float | None) -> int | None:
    """What a request may plan to use: the configured budget, else most of the GPU; None (no limit) on the CPU."""
    if budget_gib is not None:
        return int(budget_gib * GIB)
    return None if total_bytes is None else int(total_bytes * BUDGET_FRACTION)
