"""The optimized path: levers on top of plain diffusers, each a setting, each falling back safely where it cannot work.

- attention: `cudnn` runs every attention module on PyTorch's cuDNN SDPA kernel (it takes masks); `flash3` also puts
  FlashAttention-3 on the mask-free self-attention modules (`attn1`, `audio_attn1`; cross-attention always carries the
  prompt mask, ltx2-models.md section 3). Needs CUDA (flash3: the flash_attn_3 package, Hopper).
- compile: regional `torch.compile` of the repeated transformer block (diffusers `compile_repeated_blocks`): one block
  compiles once and serves all 48; each new shape pays a warm-up compile. Needs CUDA here (CPU compiles are slow and
  need a C++ toolchain) and a C compiler for Triton (off, with the reason, without one). A compilation that fails
  anyway puts the blocks back to eager for that engine with one log line, and the clip runs on (engine.py).
- fp8_matmul: torchao float8 dynamic activation and weight quantization (per-row scales) of the transformer blocks'
  linear layers: fp8 tensor-core matmuls. Off unless asked for (`on`): the official pipelines keep bf16 unless told
  otherwise, and the quality of these matmuls has not been measured on a GPU yet. Needs CUDA compute capability 8.9+
  and torchao; not applied with the distilled LoRA loaded (peft cannot wrap torchao's float8 weights).
- vae_tile_frames: temporal VAE tiles of this many frames; by default the official 80 with an overlap of 24
  (decode.py), each frame decoded 1.43 times; diffusers' default 16 with an overlap of 8 decodes each frame twice.
  Other lengths overlap by half a tile, up to 24 frames.
- prompt_cache: prompt embeddings kept for this many recent prompts, so a repeated prompt skips the 12B text encoder.

`SpeedOptions()` is the engine's default ("auto": every lever that can work on this device, fp8 matmuls excepted);
`SpeedOptions.plain()` is diffusers as documented (eager, default attention, no cache), with the official VAE tiles:
they are part of the recipe, not a lever, so both paths decode alike. A lever that cannot work on this
device (or without its package) stays off, with a warning when it was asked for explicitly; `apply` reports what
it did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from .decode import TEMPORAL_TILE_FRAMES, TEMPORAL_TILE_OVERLAP
from .recipes import PromptCache

log = logging.getLogger(__name__)

Switch = Literal["auto", "on", "off"]
SELF_ATTENTION = ("attn1", "audio_attn1")
FP8_MIN_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class SpeedOptions:
    attention: Literal["auto", "native", "cudnn", "flash3"] = "auto"
    compile: Switch = "auto"
    fp8_matmul: Literal["on", "off"] = "off"
    """Explicit opt-in only."""
    vae_tile_frames: int | None = None
    """None: the official 80 frames."""
    prompt_cache: int = 16

    @classmethod
    def plain(cls) -> "SpeedOptions":
        return cls(attention="native", compile="off", fp8_matmul="off", prompt_cache=0)


def apply(components, options: SpeedOptions, device: torch.device, fp8_storage: bool = False) -> dict[str, str]:
    """Switch on the levers `options` asks for; returns lever -> what was done (or why not). `fp8_storage`: the
    memory profile already keeps the transformer's weights in fp8 (layerwise casting), which torchao cannot stack on."""
    transformer = components.pipeline.transformer
    applied = {
        "attention": _attention(transformer, options.attention, device),
        "fp8_matmul": _fp8_matmul(components, options.fp8_matmul, device, fp8_storage),
        "compile": _compile(transformer, options.compile, device),
    }
    tile = options.vae_tile_frames or TEMPORAL_TILE_FRAMES
    vae = components.pipeline.vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = tile, tile - tile_overlap(tile)
    applied["vae_tile_frames"] = str(tile)
    components.prompt_cache = PromptCache(options.prompt_cache)
    applied["prompt_cache"] = str(options.prompt_cache)
    for lever, outcome in applied.items():
        log.info("speed lever %s: %s", lever, outcome)
    return applied


def tile_overlap(tile_frames: int) -> int:
    """Frames two temporal VAE tiles share: half a tile, at most the official 24 (80 -> 24, diffusers' 16 -> 8)."""
    return min(tile_frames // 2, TEMPORAL_TILE_OVERLAP)


def _unavailable(requested: bool, reason: str) -> str:
    """A lever that cannot work here stays off; asked for explicitly, that is worth a warning."""
    if requested:
        log.warning("speed lever unavailable: %s", reason)
    return f"off ({reason})"


def _attention(transformer, choice: str, device: torch.device) -> str:
    if choice == "native":
        return "native"
    if device.type != "cuda":
        return _unavailable(choice != "auto", "the CPU uses PyTorch's native attention")
    transformer.set_attention_backend("_native_cudnn")
    if choice != "flash3":
        return "cudnn"
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    flash3 = AttentionBackendName("_flash_3")
    try:
        _check_attention_backend_requirements(flash3)
    except (RuntimeError, ImportError) as error:
        return "cudnn; flash3 " + _unavailable(True, f"FlashAttention-3 is not usable here: {error}")
    for name, module in transformer.named_modules():
        if name.rsplit(".", 1)[-1] in SELF_ATTENTION:
            module.processor._attention_backend = flash3
    return "cudnn, flash3 on self-attention"


def _fp8_matmul(components, switch: Switch, device: torch.device, fp8_storage: bool) -> str:
    if switch == "off":
        return "off"
    if fp8_storage:
        return _unavailable(switch == "on", "the memory profile stores the weights in fp8 already (layerwise casting)")
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < FP8_MIN_CAPABILITY:
        return _unavailable(switch == "on", "fp8 matmuls need a CUDA GPU of compute capability 8.9 or newer")
    if getattr(components.pipeline.transformer, "peft_config", None):
        return _unavailable(switch == "on", "the distilled LoRA is loaded (Pro, LTX-2.3 recipes)")
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError:
        return _unavailable(switch == "on", "torchao is not installed (pip install 'ltx-runtime[cuda]')")
    transformer = components.pipeline.transformer
    quantize_(
        transformer,
        Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
        filter_fn=lambda module, name: isinstance(module, torch.nn.Linear) and name.startswith("transformer_blocks."),
    )
    return "float8 e4m3 weights and activations, per-row scales"


def _compile(transformer, switch: Switch, device: torch.device) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda":
        return _unavailable(switch == "on", "compilation is used on CUDA only")
    if missing_compiler() is not None:
        return _unavailable(switch == "on", missing_compiler())
    transformer.compile_repeated_blocks(fullgraph=True)
    return "regional (LTX2VideoTransformerBlock)"


def missing_compiler() -> str | None:
    """Why inductor cannot build its kernels here, or None: Triton compiles a small C launcher per kernel with the
    C compiler it finds ($CC, cc, gcc, clang); a runtime-only image has none."""
    import os
    import shutil

    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    if not any(shutil.which(candidate) for candidate in candidates):
        return f"no C compiler for Triton (looked for {', '.join(candidates)})"
    return None


def uncompile(module: torch.nn.Module) -> bool:
    """Put every `Module.compile`d submodule of `module` back to eager; whether there was any."""
    compiled = [sub for sub in module.modules() if getattr(sub, "_compiled_call_impl", None) is not None]
    for sub in compiled:
        sub._compiled_call_impl = None
    return bool(compiled)
