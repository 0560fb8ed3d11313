"""GPU memory: profiles that place the model's weights (the profiles themselves and the estimate of what a request
needs are in admission.py, free of torch, for the API server).

Three profiles, picked per model unless a setting names one (admission.choose_profile: the first of them in which
the model's default clip fits the GPU's budget):

- `resident` (80 GB cards and up): every module in bf16 on the GPU, nothing moves.
- `fp8` (~48 GB cards): the transformer's weights are stored in float8 (e4m3) and cast to bf16 layer by layer as they
  run (diffusers layerwise casting); the 12B text encoder lives in host memory and is streamed through the GPU layer
  by layer while the prompt is encoded (diffusers group offloading), so it occupies the GPU only during encoding.
- `low` (24 GB cards): as `fp8`, and the transformer's blocks are streamed from host memory too, one block ahead.

A request whose estimate (admission.py) exceeds the budget is refused before anything runs. docs/memory.md shows the
arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .admission import GIB, MemoryProfile
from .catalog import PARAMETER_COUNTS, ModelSpec

BUDGET_FRACTION = 0.92
"""Share of the GPU's memory a request may plan to use; the rest covers the CUDA context and fragmentation."""


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
    modules = {**pipeline.components, "latent_upsampler": components.latent_upsampler,
               "diffusion_decoder": components.diffusion_decoder}  # fmt: skip
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
