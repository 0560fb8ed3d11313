"""What an API node needs to admit a task, free of torch (an API node never imports it): the memory profiles and the
estimate of the GPU memory a request needs, the admission check against a worker's budget, and where the content
classifier's files are and which of them are missing.

Estimates are arithmetic on the real parameter counts (catalog.PARAMETER_COUNTS, and the guided recipes' distilled
LoRA: catalog.DISTILLED_LORA_BYTES) and the request's token count, size and VAE tiles; the activation constants per architecture (`ACTIVATIONS`) are measured by tracing the full-size modules on the
meta device (memory_trace.py; tests/engine/test_memory_trace.py keeps them within 10 % above the traced peaks). memory.py
places the weights by these profiles; docs/memory.md shows the arithmetic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .catalog import DISTILLED_LORA_BYTES, PARAMETER_COUNTS, ModelSpec, Recipe
from .geometry import LARGER_TILES, OFFICIAL_TILES, DecodeTiles, GenerationPlan, plan_generation
from .request import RequestError

GIB = 1024**3


class MemoryProfile(str, Enum):
    RESIDENT = "resident"
    FP8 = "fp8"
    LOW = "low"


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
    decode_per_pixel: dict[DecodeTiles, int]
    """Bytes per generated pixel (width x height) of the streamed VAE decode with each tiling the plan may pick
    (geometry.py: the official tiles and `LARGER_TILES`): bounded by a temporal tile, not by the clip's length."""


UNTILED_160, UNTILED_80 = LARGER_TILES
ACTIVATIONS = {
    # traced: 144.5 / 328.5 KiB per token; decode 2481 / 7850 / 12987 bytes per pixel (official, whole frames in
    # 80- and 160-frame tiles)
    "ltx-2": Activations(text_to_video=148 * KIB, image_to_video=336 * KIB,
                         decode_per_pixel={OFFICIAL_TILES: 2560, UNTILED_80: 8064, UNTILED_160: 13312}),
    # traced: 144.6 / 376.6 KiB per token (gated attention and cross-attention modulation add per-token tensors);
    # decode 6827 / 11086 bytes per pixel untiled (its VAE is narrower)
    "ltx-2.3": Activations(text_to_video=148 * KIB, image_to_video=384 * KIB,
                           decode_per_pixel={OFFICIAL_TILES: 2560, UNTILED_80: 7040, UNTILED_160: 11392}),
    # traced: 144.6 / 376.6 KiB per token, as LTX-2.3 (the FFN biases it drops are weights, not activations); the
    # decode as LTX-2.3's (the same conv VAE). UNMEASURED: the diffusion decoder, LTX-2.5's default decoder
    # (diffusion_decode.py), has not been traced at full size; its peak is not this figure: it is not streamed (the
    # whole clip's pixels are held at once, 2 bytes x 3 per pixel per frame in bf16, 12.5 GB for 20 s of 1080p at
    # 50 fps) and its stage 4/5 tiles (768 px, 80 frames) carry 512/256-channel activations. Until traced, this
    # estimate is the conv VAE's for both decoders.
    "ltx-2.5": Activations(text_to_video=148 * KIB, image_to_video=384 * KIB,
                           decode_per_pixel={OFFICIAL_TILES: 2560, UNTILED_80: 7040, UNTILED_160: 11392}),
}  # fmt: skip
# The decode with the official tiles, traced with ltx-core's causal temporal tiles (each later tile starts one latent
# early): 2481 bytes per generated pixel at 1080p (4.8 GiB), 2506 at 4K (19.5 GiB). Whole frames cost the same per
# pixel at 1080p and 4K (the frame's area is all there is), and 3-5x the official tiles' at 1080p: they are for cards
# with room to spare.
"""Per architecture (catalog.ModelSpec.architecture); a new architecture adds its measured entry here."""
TEXT_ENCODER_STREAMING_BYTES = 2 * GIB
"""GPU memory of a streamed text encoder while it encodes: the layers in flight and the embedding table."""
TRANSFORMER_BLOCKS = 48
STREAMED_BLOCKS = 2
"""Blocks of a streamed transformer on the GPU at once: the running one and the one being copied in."""


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
    tiles: DecodeTiles = OFFICIAL_TILES
    """The VAE tiles the decoding phase is counted with."""

    @property
    def peak(self) -> int:
        return max(self.encoding, self.denoising, self.decoding)


def video_tokens(plan: GenerationPlan, recipe: Recipe, appended_frames: int = 0) -> int:
    """Tokens of the widest transformer pass: stage 2 at full size, or stage 1 when guidance batches the
    conditional and unconditional passes together (half the size, a quarter of the tokens, twice the batch).
    `appended_frames`: keyframe images past the first frame, each appended as one more latent frame of tokens
    (ltx-core `VideoConditionByKeyframeIndex`)."""
    frames = plan.latent_frames + appended_frames
    stage_1 = frames * (plan.stage1_height // 32) * (plan.stage1_width // 32)
    stage_2 = frames * (plan.gen_height // 32) * (plan.gen_width // 32)
    return max(stage_1 * (1 if recipe is Recipe.FAST else 2), stage_2)


def estimate(
    spec: ModelSpec, plan: GenerationPlan, profile: MemoryProfile, budget: int | None = None,
    image_to_video: bool = False, tiles: DecodeTiles = OFFICIAL_TILES, appended_frames: int = 0,
) -> MemoryEstimate:  # fmt: skip
    """GPU bytes `plan` needs under `profile` for `spec`'s real weights, phase by phase; `image_to_video`: the clip
    is conditioned on frame images (per-token timesteps), `appended_frames` of them past the first frame; `tiles`:
    the VAE tiles of the decode."""
    params = PARAMETER_COUNTS[spec.architecture]
    bf16 = 2
    transformer = params["transformer"] * (bf16 if profile is MemoryProfile.RESIDENT else 1)
    if spec.needs_distilled_lora:  # loaded into the transformer, kept in bf16 by every profile (LAYERWISE_CASTING_SKIP)
        transformer += DISTILLED_LORA_BYTES[spec.architecture]
    if profile is MemoryProfile.LOW:
        transformer = transformer * STREAMED_BLOCKS // TRANSFORMER_BLOCKS
    others = sum(count for name, count in params.items() if name not in ("transformer", "text_encoder")) * bf16
    text_encoder = params["text_encoder"] * bf16 if profile is MemoryProfile.RESIDENT else 0
    tokens = video_tokens(plan, spec.recipe, appended_frames)
    resident = transformer + others + text_encoder
    encoding = resident + (0 if profile is MemoryProfile.RESIDENT else TEXT_ENCODER_STREAMING_BYTES)
    activations = ACTIVATIONS[spec.architecture]
    per_token = activations.image_to_video if image_to_video else activations.text_to_video
    denoising = resident + tokens * per_token
    decoding = resident + plan.gen_width * plan.gen_height * activations.decode_per_pixel[tiles]
    frugal = budget is not None and max(encoding, denoising, decoding) > budget
    if frugal:  # the text encoder leaves the GPU after encoding, a resident transformer during the decode
        denoising -= text_encoder
        decoding -= text_encoder + (0 if profile is MemoryProfile.LOW else transformer)
    return MemoryEstimate(tokens, encoding, denoising, decoding, frugal, tiles)


def choose_tiles(
    spec: ModelSpec, plan: GenerationPlan, profile: MemoryProfile, budget: int | None, image_to_video: bool = False,
    appended_frames: int = 0,
) -> tuple[MemoryEstimate, str]:
    """The estimate with the largest VAE tiles (decode.LARGER_TILES, then the official ones) that leave the clip
    within the budget without the frugal mode, and why those: larger tiles never cost a clip its speed elsewhere."""
    official = estimate(spec, plan, profile, budget, image_to_video, appended_frames=appended_frames)
    if budget is None:
        return official, "the official tiles: no GPU memory budget to plan larger ones against"
    if official.frugal:
        return official, "the official tiles: the clip needs the frugal mode already"
    for tiles in LARGER_TILES:
        larger = estimate(spec, plan, profile, None, image_to_video, tiles, appended_frames)  # not frugal
        if larger.peak <= budget:
            needs = f"the decode needs {larger.decoding / GIB:.1f} GiB of the {budget / GIB:.1f} GiB budget"
            return larger, f"{tiles}: {needs}"
    return official, (
        f"the official tiles: {LARGER_TILES[-1]} would need {larger.decoding / GIB:.1f} GiB, over the "
        f"{budget / GIB:.1f} GiB budget"
    )


def default_clip(spec: ModelSpec) -> GenerationPlan:
    """The clip a model's profile is chosen for: its default size, duration and fps (a model whose duration head
    picks the length: its shortest hosted duration)."""
    width, height = spec.default_size
    seconds = spec.default_duration or min(spec.durations)
    return plan_generation(width, height, seconds, spec.default_fps, spec.audio_sample_rate)


def choose_profile(spec: ModelSpec, budget: int | None) -> MemoryProfile:
    """The profile that keeps the most of `spec` on the GPU and still fits its default clip (text-to-video) in the
    budget, the frugal mode allowed; `low` when none does; `resident` without a budget (the CPU). Per model: the
    guided recipes' distilled LoRA (7.6 GB) tips LTX-2.3 and LTX-2.5 Pro out of `resident` on an 80 GB card, where
    LTX-2 fits."""
    if budget is None:
        return MemoryProfile.RESIDENT
    clip = default_clip(spec)
    for profile in MemoryProfile:
        if estimate(spec, clip, profile, budget).peak <= budget:
            return profile
    return MemoryProfile.LOW


class MemoryLimitError(RequestError):
    """A request whose estimated GPU memory exceeds the budget: refused before anything runs."""

    def __init__(self, message: str):
        super().__init__("width", message)


def frame_image_load(frames) -> dict:
    """`estimate`'s, `check_memory`'s and `choose_tiles`' image arguments for frame images placed at `frames` (0, an
    index or "last"): whether the clip is conditioned at all (per-token timesteps), and how many images are appended
    past the first frame, each a latent frame of tokens more."""
    frames = list(frames)
    return {"image_to_video": bool(frames), "appended_frames": sum(frame != 0 for frame in frames)}


def check_memory(
    spec: ModelSpec, plan: GenerationPlan, profile: MemoryProfile, budget: int | None, image_to_video: bool = False,
    appended_frames: int = 0,
) -> MemoryEstimate:
    """Admission control: the estimate for `plan` (conditioned on frame images when `image_to_video`,
    `appended_frames` of them past the first frame), or MemoryLimitError naming the limit when it does not fit even
    in the frugal mode."""

    def needs(under: MemoryProfile) -> MemoryEstimate:
        return estimate(spec, plan, under, budget, image_to_video, appended_frames=appended_frames)

    needed = needs(profile)
    if budget is not None and needed.peak > budget:
        advice = "a smaller size, a shorter clip or a lower frame rate"
        profiles = list(MemoryProfile)  # from the most GPU memory to the least
        more_frugal = profiles[profiles.index(profile) + 1 :]
        fitting = next((other for other in more_frugal if needs(other).peak <= budget), None)
        if fitting is not None:
            name = fitting.value
            advice += f", or run the server with the '{name}' memory profile (LTX_MEMORY_PROFILE={name}), which fits"
        raise MemoryLimitError(
            f"{plan.width}x{plan.height} for {plan.duration:g} s at {plan.fps} fps needs about "
            f"{needed.peak / GIB:.0f} GiB of GPU memory ({needed.tokens:,} video tokens) with the '{profile.value}' "
            f"memory profile, over this server's limit of {budget / GIB:.0f} GiB; ask for {advice}"
        )
    return needed


HOME_TINY_FOLDER = Path.home() / ".cache" / "ltx-runtime" / "tiny"


def default_tiny_folder() -> Path:
    """Root of the tiny weights, one folder per architecture (ltx-2/, ltx-2.3/), built on first use: LTX_TINY_DIR,
    read at each call (so a value set after import counts), else HOME_TINY_FOLDER. The server takes it from its
    settings (`Settings.tiny_dir`)."""
    return Path(os.environ.get("LTX_TINY_DIR", HOME_TINY_FOLDER))


SAFETY_CHECKER = "safety-checker"
"""The classifier's weights.lock entry and its folder name under a weights root."""
REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def missing_files(folder: Path) -> list[str]:
    """The classifier files `folder` lacks (all of them when it does not exist)."""
    return [name for name in REQUIRED_FILES if not (Path(folder) / name).is_file()]
