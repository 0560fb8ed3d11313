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
- unmasked_cross_attention: the prompt mask reaching the transformer is all ones (the connectors replace padding
  with learned registers), yet passing it forces a masked kernel; an all-ones mask is dropped (a transformer
  pre-forward hook, checked once per mask tensor), which is numerically the same and lets the mask-free kernels run.
  On by default, on every device.
- fp8_attention: SageAttention (int8 Q.K, fp8 P.V; diffusers' `sage` backend) on the self-attention modules. Off
  unless asked for (`on`): quality unmeasured. Needs CUDA compute capability 8.9+ and the sageattention package.
- cuda_graphs: the compiled blocks in torch.compile's `reduce-overhead` mode (CUDA graphs: one launch per block
  instead of hundreds of kernels). Off unless asked for; needs CUDA and compile.
- vae_compile: torch.compile of the video VAE's decoder (dynamic shapes: edge tiles differ). Off unless asked for.
- vae_tile_frames: temporal VAE tiles of this many frames; by default the official 80 with an overlap of 24
  (decode.py), each frame decoded 1.43 times; diffusers' default 16 with an overlap of 8 decodes each frame twice.
  Other lengths overlap by half a tile, up to 24 frames.
- vae_tiles: larger VAE tiles where the card has room: per clip, the plan (admission.py `choose_tiles`) decodes whole
  frames in 160- or then 80-frame temporal tiles when the decode fits the memory budget with them and the clip needs
  no frugal mode, else the official tiles (the reason is logged). Fewer pixels and frames are decoded twice, and
  there are no spatial seams; the output differs from the official tiled decode only at the seams (the bench's
  quality guard). On by default on CUDA; the CPU (no memory budget) keeps the official tiles.
- prompt_cache: prompt embeddings kept for this many recent prompts, so a repeated prompt skips the 12B text encoder.
- gpu_colour: the decoded frames are converted to yuv420p (BT.709, limited range, as ffmpeg's swscale does it:
  colour.py) on the GPU, and ffmpeg encodes them without converting; RGB is made as well only for the content check.
  That takes the conversion off the encoder's CPU thread and sends half the bytes of rgb24 to the host. On by default
  on CUDA, off in `plain`; the CPU keeps the rgb24 path, where swscale is about 10x faster than torch
  (scripts/colour_bench.py, docs/performance.md).

`SpeedOptions()` is the engine's default ("auto": every lever that can work on this device, fp8 matmuls excepted);
`SpeedOptions.plain()` is diffusers as documented (eager, default attention, no cache), with the official VAE tiles:
they are part of the recipe, not a lever, so both paths decode alike. A lever that cannot work on this
device (or without its package) stays off, with a warning when it was asked for explicitly; `apply` reports what
it did.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Literal

import torch

from .decode import TEMPORAL_TILE_FRAMES, tile_overlap
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
    unmasked_cross_attention: Switch = "auto"
    """Drop a prompt mask that is all ones (it is, after the connectors' registers): the mask-free kernel runs."""
    fp8_attention: Literal["on", "off"] = "off"
    """SageAttention (int8 Q.K, fp8 P.V) on the self-attention; explicit opt-in only (quality unmeasured)."""
    cuda_graphs: Literal["on", "off"] = "off"
    """torch.compile's `reduce-overhead` mode (CUDA graphs) for the compiled blocks; explicit opt-in only."""
    vae_compile: Literal["on", "off"] = "off"
    """torch.compile of the video VAE's decoder; explicit opt-in only (tiles of several shapes recompile)."""
    vae_tiles: Switch = "auto"
    """Larger VAE tiles (whole frames, longer temporal tiles) when the clip's plan has room for them on the GPU."""
    gpu_colour: Switch = "auto"
    """RGB -> yuv420p on the GPU, so ffmpeg encodes without converting (CUDA only: on the CPU swscale is faster)."""

    @classmethod
    def plain(cls) -> "SpeedOptions":
        return cls(attention="native", compile="off", fp8_matmul="off", prompt_cache=0, unmasked_cross_attention="off",
                   vae_tiles="off", gpu_colour="off")  # fmt: skip


def apply(components, options: SpeedOptions, device: torch.device, fp8_storage: bool = False) -> dict[str, str]:
    """Switch on the levers `options` asks for; returns lever -> what was done (or why not). `fp8_storage`: the
    memory profile already keeps the transformer's weights in fp8 (layerwise casting), which torchao cannot stack on."""
    transformer = components.pipeline.transformer
    applied = {
        "attention": _attention(transformer, options.attention, device),
        "unmasked_cross_attention": _unmasked_cross_attention(transformer, options.unmasked_cross_attention),
        "fp8_attention": _fp8_attention(transformer, options.fp8_attention, device),
        "fp8_matmul": _fp8_matmul(components, options.fp8_matmul, device, fp8_storage),
        "compile": _compile(transformer, options.compile, device, options.cuda_graphs == "on"),
    }
    applied["cuda_graphs"] = _cuda_graphs(options.cuda_graphs, applied["compile"], device)
    applied["vae_compile"] = _vae_compile(components.pipeline.vae, options.vae_compile, device)
    tile = options.vae_tile_frames or TEMPORAL_TILE_FRAMES
    vae = components.pipeline.vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = tile, tile - tile_overlap(tile)
    applied["vae_tile_frames"] = str(tile)
    applied["vae_tiles"] = _vae_tiles(options.vae_tiles, device)
    applied["gpu_colour"] = _gpu_colour(options.gpu_colour, device)
    components.prompt_cache = PromptCache(options.prompt_cache)
    applied["prompt_cache"] = str(options.prompt_cache)
    for lever, outcome in applied.items():
        log.info("speed lever %s: %s", lever, outcome)
    return applied


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


def _compile(transformer, switch: Switch, device: torch.device, cuda_graphs: bool = False) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda":
        return _unavailable(switch == "on", "compilation is used on CUDA only")
    if missing_compiler() is not None:
        return _unavailable(switch == "on", missing_compiler())
    if cuda_graphs:
        transformer.compile_repeated_blocks(fullgraph=True, mode="reduce-overhead")
        return "regional (LTX2VideoTransformerBlock), reduce-overhead"
    transformer.compile_repeated_blocks(fullgraph=True)
    return "regional (LTX2VideoTransformerBlock)"


def _cuda_graphs(switch: str, compiled: str, device: torch.device) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda":
        return _unavailable(True, "CUDA graphs need a CUDA GPU")
    if not applied(compiled):
        return _unavailable(True, "CUDA graphs ride on the compiled blocks, and compile is off")
    return "on (reduce-overhead over each compiled block)"


def _vae_compile(vae, switch: str, device: torch.device) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda":
        return _unavailable(True, "compilation is used on CUDA only")
    if missing_compiler() is not None:
        return _unavailable(True, missing_compiler())
    vae.decoder.compile(dynamic=True)  # spatial tiles at the frame's edges have other shapes
    return "on (the decoder, dynamic shapes)"


def _gpu_colour(switch: Switch, device: torch.device) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda":
        return _unavailable(switch == "on", "on the CPU ffmpeg's swscale converts to yuv420p about 10x faster than torch")
    return "on (RGB -> yuv420p on the GPU; ffmpeg encodes without converting)"


def _vae_tiles(switch: Switch, device: torch.device) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda":
        return _unavailable(switch == "on", "larger tiles are planned against a GPU's memory budget")
    return "per clip: whole frames in 160- or 80-frame tiles where the decode fits the budget, else the official"


def _unmasked_cross_attention(transformer, switch: Switch) -> str:
    if switch == "off":
        return "off"
    transformer.register_forward_pre_hook(DropAllOnesMasks(), with_kwargs=True)
    return "on (an all-ones prompt mask is dropped)"


class DropAllOnesMasks:
    """A transformer pre-forward hook: a prompt mask of all ones changes nothing but forces a masked attention
    kernel (and keeps FlashAttention off); it is passed as None instead. Each mask tensor is checked once (one small
    device-to-host read per mask, not per step: the pipeline passes the same tensor, never changed in place, at every
    step; inference tensors keep no version counter to check that with)."""

    MASKS = ("encoder_attention_mask", "audio_encoder_attention_mask")

    def __init__(self):
        self._checked: list[tuple[weakref.ref, bool]] = []

    def __call__(self, module, args, kwargs):
        for name in self.MASKS:
            mask = kwargs.get(name)
            if mask is not None and mask.ndim == 2 and self._all_ones(mask):
                kwargs[name] = None
        return args, kwargs

    def _all_ones(self, mask: torch.Tensor) -> bool:
        self._checked = [entry for entry in self._checked if entry[0]() is not None]
        for reference, answer in self._checked:
            if reference() is mask:
                return answer
        answer = bool((mask == 1).all())
        self._checked.append((weakref.ref(mask), answer))
        return answer


def _fp8_attention(transformer, switch: str, device: torch.device) -> str:
    if switch == "off":
        return "off"
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < FP8_MIN_CAPABILITY:
        return _unavailable(True, "FP8 attention needs a CUDA GPU of compute capability 8.9 or newer")
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    sage = AttentionBackendName("sage")
    try:
        _check_attention_backend_requirements(sage)
    except (RuntimeError, ImportError) as error:
        return _unavailable(True, f"SageAttention is not usable here: {error}")
    for name, module in transformer.named_modules():
        if name.rsplit(".", 1)[-1] in SELF_ATTENTION:
            module.processor._attention_backend = sage
    return "SageAttention on self-attention"


def applied(outcome: str) -> bool:
    """Whether a lever's outcome (what `apply` reports) is on."""
    return not outcome.startswith("off")


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
