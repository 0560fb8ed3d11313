"""What an API node needs to admit a task, free of torch (an API node never imports it): the memory profiles and the
estimate of the GPU memory a request needs, the admission check against a worker's budget, and where the content
classifier's files are and which of them are missing.

Estimates are arithmetic on the real parameter counts (catalog.PARAMETER_COUNTS, and the guided recipes' distilled
LoRA: catalog.DISTILLED_LORA_BYTES) and the request's token count, size and VAE tiles; the activation constants per
architecture (`ACTIVATIONS`, and `DIFFUSION_DECODE` for LTX-2.5's diffusion decoder) are measured by tracing the
full-size modules on the meta device (memory_trace.py; tests/engine/test_memory_trace.py keeps them within 10 % above
the traced peaks). memory.py places the weights by these profiles; docs/memory.md shows the arithmetic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .catalog import (
    DIFFUSION_DECODER_PARAMETERS,
    DISTILLED_LORA_BYTES,
    PARAMETER_COUNTS,
    ModelSpec,
    Recipe,
    video_decoder_for,
)
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
    # conv VAE's decode as LTX-2.3's (the same VAE). Its diffusion decoder: DIFFUSION_DECODE.
    "ltx-2.5": Activations(text_to_video=148 * KIB, image_to_video=384 * KIB,
                           decode_per_pixel={OFFICIAL_TILES: 2560, UNTILED_80: 7040, UNTILED_160: 11392}),
}  # fmt: skip
# The decode with the official tiles, traced with ltx-core's causal temporal tiles (each later tile starts one latent
# early): 2481 bytes per generated pixel at 1080p (4.8 GiB), 2506 at 4K (19.5 GiB). Whole frames cost the same per
# pixel at 1080p and 4K (the frame's area is all there is), and 3-5x the official tiles' at 1080p: they are for cards
# with room to spare.
"""Per architecture (catalog.ModelSpec.architecture); a new architecture adds its measured entry here."""


@dataclass(frozen=True)
class DiffusionDecodeActivations:
    """Working memory of LTX-2.5's diffusion decode (diffusion_decode.py), bf16, measured on the meta device at full
    size (memory_trace.diffusion_decode_peak) and rounded up: a tile's working set, bounded by diffusers' tile, plus
    what the decode holds of the whole clip at once."""

    per_tile_pixel_frame: int
    """Bytes per pixel and frame of the largest tile (stages 4 and 5 on it: 512- and 256-channel activations)."""
    per_tile_pixel: int
    """Bytes per pixel of the tile's area whatever its length (the trailing tile's padding frames in stage 4)."""
    per_clip_pixel_frame: int
    """Bytes per generated pixel and frame of the clip beside the tile: stages 1-3's output and the tiles decoded so
    far, held at once (diffusers' decode is not streamed)."""
    joined_pixel_frame: int
    """Bytes per generated pixel and frame when the decoded tiles are joined into the clip, the decode's last step:
    stages 1-3's output, the temporal tiles uncropped (80 frames for every 56 kept) and the clip. Past about 2 G
    pixel-frames (4K from 5 s at 50 fps, 10 s at 25) this, not a tile, is the peak."""


DIFFUSION_DECODE_TILE = (768, 768, 80)
"""Width, height and frames of the diffusion decoder's tiles (diffusers' defaults, which diffusion_decode.prepare
keeps)."""
# Traced at eleven sizes, 768x768, 1280x768, 1920x1088 and 3840x2176, 25 to 1001 frames (docs/memory.md): 5.16 GiB for
# one tile of 25 frames, 15.82 for one of 80, and past a tile 8 bytes per pixel and frame more while one temporal tile
# is done (the stages 1-3 output), about 16-17 past a few (the decoded tiles held too); 4K 20 s at 25 fps peaks when
# the tiles are joined, 24.1 bytes per pixel and frame. These constants are 0.2-9.6 % above all eleven.
DIFFUSION_DECODE = DiffusionDecodeActivations(
    per_tile_pixel_frame=353, per_tile_pixel=512, per_clip_pixel_frame=17, joined_pixel_frame=25
)


def decodes_with_diffusion(spec: ModelSpec, video_decoder: str) -> bool:
    """Whether `spec` decodes with LTX-2.5's diffusion decoder when the `video_decoder` setting picks `video_decoder`
    for LTX-2.5 (catalog.choose_video_decoder)."""
    return video_decoder_for(spec.architecture, video_decoder) == "diffusion"


def diffusion_decode_bytes(plan: GenerationPlan) -> int:
    """Working memory of the diffusion decode of `plan`: its largest tile's and the whole clip's share, or the clip
    as its tiles are joined, whichever is more."""
    tile_width, tile_height, tile_frames = DIFFUSION_DECODE_TILE
    per = DIFFUSION_DECODE
    tile_area = min(plan.gen_width, tile_width) * min(plan.gen_height, tile_height)
    tile = tile_area * (min(plan.gen_frames, tile_frames) * per.per_tile_pixel_frame + per.per_tile_pixel)
    pixel_frames = plan.gen_width * plan.gen_height * plan.gen_frames
    return max(tile + pixel_frames * per.per_clip_pixel_frame, pixel_frames * per.joined_pixel_frame)


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
    """The VAE tiles the decoding phase is counted with (the conv VAE's; the diffusion decoder tiles its own way)."""
    diffusion_decoder: bool = False
    """Whether the decoding phase is LTX-2.5's diffusion decoder's."""

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
    video_decoder: str = "conv",
) -> MemoryEstimate:  # fmt: skip
    """GPU bytes `plan` needs under `profile` for `spec`'s real weights, phase by phase; `image_to_video`: the clip
    is conditioned on frame images (per-token timesteps), `appended_frames` of them past the first frame; `tiles`:
    the conv VAE's tiles of the decode; `video_decoder`: LTX-2.5's decoder, "diffusion" or "conv" (the other
    architectures have the conv VAE only)."""
    params = PARAMETER_COUNTS[spec.architecture]
    bf16 = 2
    transformer = params["transformer"] * (bf16 if profile is MemoryProfile.RESIDENT else 1)
    if spec.needs_distilled_lora:  # loaded into the transformer, kept in bf16 by every profile (LAYERWISE_CASTING_SKIP)
        transformer += DISTILLED_LORA_BYTES[spec.architecture]
    if profile is MemoryProfile.LOW:
        transformer = transformer * STREAMED_BLOCKS // TRANSFORMER_BLOCKS
    diffusion = decodes_with_diffusion(spec, video_decoder)
    others = sum(count for name, count in params.items() if name not in ("transformer", "text_encoder")) * bf16
    if diffusion:  # beside the conv VAE, whose encoder takes the frame images
        others += DIFFUSION_DECODER_PARAMETERS * bf16
    text_encoder = params["text_encoder"] * bf16 if profile is MemoryProfile.RESIDENT else 0
    tokens = video_tokens(plan, spec.recipe, appended_frames)
    resident = transformer + others + text_encoder
    encoding = resident + (0 if profile is MemoryProfile.RESIDENT else TEXT_ENCODER_STREAMING_BYTES)
    activations = ACTIVATIONS[spec.architecture]
    per_token = activations.image_to_video if image_to_video else activations.text_to_video
    denoising = resident + tokens * per_token
    if diffusion:
        decoding = resident + diffusion_decode_bytes(plan)
    else:
        decoding = resident + plan.gen_width * plan.gen_height * activations.decode_per_pixel[tiles]
    frugal = budget is not None and max(encoding, denoising, decoding) > budget
    if frugal:  # the text encoder leaves the GPU after encoding, a resident transformer during the decode
        denoising -= text_encoder
        decoding -= text_encoder + (0 if profile is MemoryProfile.LOW else transformer)
    return MemoryEstimate(tokens, encoding, denoising, decoding, frugal, tiles, diffusion)


def choose_tiles(
    spec: ModelSpec, plan: GenerationPlan, profile: MemoryProfile, budget: int | None, image_to_video: bool = False,
    appended_frames: int = 0, video_decoder: str = "conv",
) -> tuple[MemoryEstimate, str]:
    """The estimate with the largest VAE tiles (decode.LARGER_TILES, then the official ones) that leave the clip
    within the budget without the frugal mode, and why those: larger tiles never cost a clip its speed elsewhere."""
    official = estimate(spec, plan, profile, budget, image_to_video, appended_frames=appended_frames,
                        video_decoder=video_decoder)  # fmt: skip
    if official.diffusion_decoder:
        return official, "the official tiles: the diffusion decoder decodes the video in its own tiles"
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


def choose_profile(spec: ModelSpec, budget: int | None, video_decoder: str = "conv") -> MemoryProfile:
    """The profile that keeps the most of `spec` on the GPU and still fits its default clip (text-to-video, decoded
    with `video_decoder` where the model has a choice) in the budget, the frugal mode allowed; `low` when none does;
    `resident` without a budget (the CPU). Per model: the guided recipes' distilled LoRA (7.6 GB) tips LTX-2.3 and
    LTX-2.5 Pro out of `resident` on an 80 GB card, where LTX-2 fits."""
    if budget is None:
        return MemoryProfile.RESIDENT
    clip = default_clip(spec)
    for profile in MemoryProfile:
        if estimate(spec, clip, profile, budget, video_decoder=video_decoder).peak <= budget:
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
    appended_frames: int = 0, video_decoder: str = "conv",
) -> MemoryEstimate:
    """Admission control: the estimate for `plan` (conditioned on frame images when `image_to_video`,
    `appended_frames` of them past the first frame; decoded with `video_decoder` where the model has a choice), or
    MemoryLimitError naming the limit, and what would fit, when it does not fit even in the frugal mode."""

    def needs(under: MemoryProfile, decoder: str = video_decoder) -> MemoryEstimate:
        return estimate(spec, plan, under, budget, image_to_video, appended_frames=appended_frames,
                        video_decoder=decoder)  # fmt: skip

    needed = needs(profile)
    if budget is not None and needed.peak > budget:
        advice = "a smaller size, a shorter clip or a lower frame rate"
        profiles = list(MemoryProfile)  # from the most GPU memory to the least
        more_frugal = profiles[profiles.index(profile) + 1 :]
        fitting = next((other for other in more_frugal if needs(other).peak <= budget), None)
        if fitting is not None:
            name = fitting.value
            advice += f", or run the server with the '{name}' memory profile (LTX_MEMORY_PROFILE={name}), which fits"
        elif needed.diffusion_decoder:
            with_conv = next((other for other in [profile, *more_frugal] if needs(other, "conv").peak <= budget), None)
            if with_conv is not None:
                setting = "LTX_VIDEO_DECODER=conv"
                if with_conv is not profile:
                    setting += f" and LTX_MEMORY_PROFILE={with_conv.value}"
                advice += f", or run the server with the conv VAE as LTX-2.5's video decoder ({setting}), which fits"
        decoder = " and the diffusion video decoder" if needed.diffusion_decoder else ""
        raise MemoryLimitError(
            f"{plan.width}x{plan.height} for {plan.duration:g} s at {plan.fps} fps needs about "
            f"{needed.peak / GIB:.0f} GiB of GPU memory ({needed.tokens:,} video tokens) with the '{profile.value}' "
            f"memory profile{decoder}, over this server's limit of {budget / GIB:.0f} GiB; ask for {advice}"
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
