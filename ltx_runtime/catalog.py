"""The model catalog: the one place that holds per-model facts.

Validation, the CLI, the docs and the tests read this module; nothing else hard-codes a model's sizes, rates or prices.

Sources (see shared/docs/runware-contract.md section 8 and shared/seeds/):
- sizes, durations, fps values and defaults, the audio flag and its default: the hosted API's model pages
  (seeds 000 LTX-2 Fast, 001 LTX-2 Pro, 003 LTX-2.3) and the OpenAPI schema of LTX-2 Fast (seed 002);
- hosted prices per second of output: Runware's model docs as quoted in runware-contract.md section 8, and the
  identical Lightricks list prices for 1440p (Comfy-Org/docs PR #517, fal.ai ltx-2 llms.txt; performance-anchors.md
  section 3). LTX-2.3 uses the current docs (0.08/0.16/0.32 $/s), not the older seed example (0.06 $/s).
- audio sample rates: the vocoder configs (24 kHz for LTX-2, 48 kHz for the LTX-2.3 bandwidth-extension vocoder);
- parameter counts: the released architectures (ltx_runtime/configs.py) counted on the meta device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .geometry import undecodable_size


class Recipe(str, Enum):
    FAST = "fast"  # LTX-2 distilled: 8 sigmas at half resolution, x2 latent upsampler, 3 refine sigmas, no guidance
    PRO = "pro"  # LTX-2 dev: 40 guided steps at half resolution, x2 upsampler, distilled-LoRA 3-step refine
    LTX23 = "ltx23"  # LTX-2.3 22B: guided two-stage recipe with the 2.3 parameters
    # LTX-2.5 Pro: the guided two-stage recipe with the 2.5 dev parameters (2.5 Fast is FAST on the 2.5 architecture)
    LTX25_PRO = "ltx25-pro"


VIDEO_DECODERS = ("diffusion", "conv")
"""LTX-2.5's two video decoders for the same latents (ltx-core 1.2.0's `DiffusionVideoDecoder` and `ConvVideoDecoder`),
the first the official pipelines' default (diffusion_decode.py). The other architectures have the conv one only."""
VIDEO_DECODER_SETTINGS = ("auto", *VIDEO_DECODERS)
"""The `video_decoder` setting: a decoder, or `auto`: the official default (diffusion) on a GPU and the conv VAE on
the CPU, where the diffusion decoder's neighbourhood attention takes minutes a second of video even on the tiny
weights (about 5 minutes for 1 s of 1080p on 2 cores; README, "LTX-2.5's video decoder")."""
DIFFUSION_DECODER_ARCHITECTURES = ("ltx-2.5",)


def choose_video_decoder(setting: str, on_gpu: bool) -> str:
    """The decoder the `video_decoder` setting picks for LTX-2.5 on this device."""
    if setting not in VIDEO_DECODER_SETTINGS:
        raise ValueError(f"video_decoder must be one of {', '.join(VIDEO_DECODER_SETTINGS)}, not {setting!r}")
    if setting == "auto":
        return "diffusion" if on_gpu else "conv"
    return setting


def video_decoder_for(architecture: str, decoder: str) -> str:
    """The video decoder a model of `architecture` decodes with when LTX-2.5 decodes with `decoder`."""
    if decoder not in VIDEO_DECODERS:
        raise ValueError(f"video_decoder must be one of {', '.join(VIDEO_DECODERS)}, not {decoder!r}")
    return decoder if architecture in DIFFUSION_DECODER_ARCHITECTURES else "conv"


PARAMETER_COUNTS = {
    "ltx-2": dict(transformer=18_876_174_592, text_encoder=12_202_563_392, connectors=1_431_475_200,
                  vae=1_222_479_601, audio_vae=53_248_146, vocoder=55_592_802, latent_upsampler=497_867_904),
    "ltx-2.3": dict(transformer=18_988_838_144, text_encoder=12_202_563_392, connectors=3_172_227_584,
                    vae=726_105_969, audio_vae=53_248_146, vocoder=128_537_448, latent_upsampler=497_867_904),
    # LTX-2.5: the 2.3 counts but for the transformer (no video FFN biases, plus the keyframe embedding; counted on
    # the meta device), the text encoder (its bf16 file, 24.5 GiB, over 2 bytes: Gemma 4 12B with the projection
    # [U]) and the duration head.
    "ltx-2.5": dict(transformer=18_987_859_200, text_encoder=13_153_337_344, connectors=3_172_227_584,
                    vae=726_105_969, audio_vae=53_248_146, vocoder=128_537_448, latent_upsampler=497_867_904,
                    duration_head=1_903_361),
}  # fmt: skip
"""Parameters per component of each architecture's released checkpoints, for memory arithmetic without building a
model (a test counts them again on the real architectures: fullsize.py)."""
DIFFUSION_DECODER_PARAMETERS = 417_133_616
"""LTX-2.5's diffusion video decoder: diffusers' LTX2VideoDiffusionDecoderModel with its default (the released)
configuration, counted on the meta device; 834 MB in bf16, the size of its diffusers-format file (ltx25.md)."""
DISTILLED_LORA_BYTES = {
    "ltx-2": 7_670_000_000,  # ltx-2-19b-distilled-lora-384: "7.67 GB" on its HF blob page (weights.lock)
    "ltx-2.3": 7_605_507_256,  # ltx-2.3-22b-distilled-lora-384-1.1, exact (weights.lock)
    "ltx-2.5": 7_605_507_256 * 450 // 384,  # ltx-2.5-22b-distilled-lora-450: size unpublished, 2.3's scaled by rank
}
"""Bytes of the distilled LoRA the guided recipes load into the transformer for stage 2 (bf16, on the GPU with it)."""


@dataclass(frozen=True)
class GuidanceLimits:
    """What a request may set on a guided recipe: the stage-1 step count and the video CFG scale (`steps`,
    `CFGScale`), and a negative prompt of its own. The defaults are the official recipe's (ltx-pipelines
    utils/constants.py `LTX_2_PARAMS` / `LTX_2_3_PARAMS`: 40 or 30 steps, video CFG 3.0, `DEFAULT_NEGATIVE_PROMPT`).

    The ranges: neither the SDK types (runware-sdk 1.8.0 task_map.py: `steps: int`, `CFGScale: float`) nor the Runware
    model pages publish bounds, so they were chosen here: at least 2 steps (the official schedule stretches its last
    sigma to 0.1, which needs two), at most 100 (2.5 times the longest official schedule); CFG 1 (no guidance) to 20
    (beyond it the official rescale of 0.7 no longer keeps the output in range)."""

    default_steps: int
    min_steps: int = 2
    max_steps: int = 100
    default_cfg: float = 3.0
    min_cfg: float = 1.0
    max_cfg: float = 20.0


LTX_2_GUIDANCE = GuidanceLimits(default_steps=40)
LTX_2_3_GUIDANCE = GuidanceLimits(default_steps=30)
GUIDANCE_BY_RECIPE = {Recipe.PRO: LTX_2_GUIDANCE, Recipe.LTX23: LTX_2_3_GUIDANCE, Recipe.LTX25_PRO: LTX_2_3_GUIDANCE}
"""Each guided recipe's defaults (recipes/guided.py reads its steps and video CFG here), also for the models whose
contract does not let a request set them (`ModelSpec.guidance` None). LTX-2.5: `LTX_2_4_PARAMS`, 2.3's steps."""


class UnknownModelError(KeyError):
    def __init__(self, model_id: str, known: list[str]):
        super().__init__(model_id)
        self.model_id = model_id
        self.known = known

    def __str__(self) -> str:
        return f"unknown model {self.model_id!r}; known models: {', '.join(self.known)}"


@dataclass(frozen=True)
class SizeRange:
    """Any width and height that are multiples of `step` within [minimum, maximum] (tiny model only)."""

    minimum: int
    maximum: int
    step: int

    def allows(self, width: int, height: int) -> bool:
        return all(self.minimum <= v <= self.maximum and v % self.step == 0 for v in (width, height))

    def describe(self) -> str:
        return (
            f"width and height multiples of {self.step} from {self.minimum} to {self.maximum}, except elongated "
            "sizes the VAE cannot decode (such as 1024x64)"
        )


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    recipe: Recipe
    weights: str
    """Its folder name under a weights root (the `folder` of its weights.lock entry)."""
    architecture: str
    """The transformer family ("ltx-2" or "ltx-2.3"); picks the tiny weights that stand in for this model and the
    parameter counts (PARAMETER_COUNTS)."""
    sizes: tuple[tuple[int, int], ...] | SizeRange
    """Allowed (width, height) pairs, or a range for the tiny demo model."""
    durations: tuple[int, ...]
    fps_values: tuple[int, ...]
    default_size: tuple[int, int]
    default_duration: int | None
    """None: the model's duration head picks the length from the prompt (LTX-2.5)."""
    default_fps: int
    audio_flag: tuple[str, ...]
    """Where the audio switch sits in a videoInference request, as a path of keys."""
    audio_default: bool
    audio_sample_rate: int
    price_per_second: dict[tuple[int, int], float] = field(default_factory=dict)
    """Hosted list price in USD per second of output, by (width, height)."""
    demo_only: bool = False
    """Offered only in demo mode and tests (tiny random weights)."""
    long_durations: tuple[int, ...] = ()
    """Durations beyond `durations` that are allowed only at `long_duration_format`."""
    long_duration_formats: tuple[tuple[int, int, int], ...] = ()
    """(width, height, fps) of the long durations: Lightricks' hosted matrix makes Fast clips above 10 s at
    1920x1080 and 25 fps only (docs.ltx.video/models; runware-contract.md section 9)."""
    guidance: GuidanceLimits | None = None
    """Set on models whose contract takes `steps`, `CFGScale` and `negativePrompt` (the guided recipes)."""
    takes_loras: bool = False
    """Whether the contract takes `lora[]` (runware-sdk 1.8.0: LTX-2.3 and LTX-2.3 Fast)."""
    size_from_image: bool = False
    """Whether a request with a first-frame image may leave out the size (taken from the image's orientation)."""
    flat_price_per_second: float | None = None
    """A hosted price that does not depend on the size (used where `price_per_second` has no entry)."""

    @property
    def picks_duration(self) -> bool:
        """Whether a request may leave the duration out: the duration head chooses it (LTX-2.5 and later)."""
        return self.default_duration is None

    @property
    def audio_to_video(self) -> bool:
        """Whether a request may give the clip's soundtrack (`inputs.audio`). Lightricks' one audio-to-video pipeline
        (ltx-pipelines 1.0.0 a2vid_two_stage.py `A2VidPipelineTwoStage`) is the guided two-stage recipe: the dev model
        with guidance, then the distilled LoRA; the distilled pipeline takes no audio. So the LTX-2 Pro and LTX-2.3 dev
        recipes take it, Fast ones do not. LTX-2.5 Pro is left out: its recipe matches ltx-pipelines 1.2.0's A2V on
        tiny weights (docs/fidelity.md, `--case pro-audio`), but offering it is a catalog decision not taken yet."""
        return self.recipe in (Recipe.PRO, Recipe.LTX23)

    @property
    def needs_distilled_lora(self) -> bool:
        """The guided recipes refine stage 2 with the distilled LoRA; Fast runs the distilled model itself."""
        return self.recipe is not Recipe.FAST

    def allows_size(self, width: int, height: int) -> bool:
        return self.size_problem(width, height) is None

    def size_problem(self, width: int, height: int) -> str | None:
        """Why width x height is not a size of this model (None when it is). A range also leaves out the elongated
        sizes whose tiled VAE decode would fail (every listed size of a hosted model decodes)."""
        listed = self.sizes.allows(width, height) if isinstance(self.sizes, SizeRange) else (width, height) in self.sizes
        if not listed:
            return f"{width}x{height} is not a size of {self.id}; allowed: {self.describe_sizes()}"
        return undecodable_size(width, height)

    def describe_sizes(self) -> str:
        if isinstance(self.sizes, SizeRange):
            return self.sizes.describe()
        return ", ".join(f"{w}x{h}" for w, h in self.sizes)

    def all_durations(self) -> tuple[int, ...]:
        return self.durations + self.long_durations

    def duration_error(self, width: int, height: int, duration: float, fps: int) -> str | None:
        """Why this duration is not allowed with this size and frame rate, or None when it is."""
        if duration in self.durations:
            return None
        if duration in self.long_durations:
            if (width, height, fps) in self.long_duration_formats:
                return None
            return (
                f"{self.id} makes clips above {max(self.durations)} s at {self.describe_long_formats()} "
                f"only, not {width}x{height} at {fps} fps"
            )
        return f"{self.id} takes durations of {self.describe_durations()} seconds, not {duration!r}"

    def describe_durations(self) -> str:
        """"6, 8, 10 (and 12, ... at 1920x1080 25 fps)": every duration, with the format the long ones need."""
        allowed = ", ".join(map(str, self.durations))
        if self.long_durations:
            allowed += f" (and {', '.join(map(str, self.long_durations))} at {self.describe_long_formats()})"
        return allowed

    def describe_long_formats(self) -> str:
        """"1920x1080 and 25 fps", or "1920x1080 and 24 or 25 fps, 1080x1920 and 24 or 25 fps"."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for width, height, fps in self.long_duration_formats:
            by_size.setdefault((width, height), []).append(fps)
        return ", ".join(
            f"{w}x{h} and {' or '.join(map(str, rates))} fps" for (w, h), rates in by_size.items()
        )

    def describe_fps(self) -> str:
        """"25, 50", or "8-50" for a run of consecutive values."""
        values = self.fps_values
        if len(values) > 2 and values == tuple(range(values[0], values[-1] + 1)):
            return f"{values[0]}-{values[-1]}"
        return ", ".join(map(str, values))

    def hosted_price(self, width: int, height: int, duration: float) -> float | None:
        """What the hosted API charges for this clip, or None where it publishes no price."""
        per_second = self.price_per_second.get((width, height), self.flat_price_per_second)
        return None if per_second is None else round(per_second * duration, 4)


_LANDSCAPE = ((1920, 1080), (2560, 1440), (3840, 2160))
_PORTRAIT = tuple((h, w) for w, h in _LANDSCAPE)
_LTX2_AUDIO_FLAG = ("providerSettings", "lightricks", "generateAudio")


def _by_size(sizes: tuple[tuple[int, int], ...], per_second: tuple[float, float, float]) -> dict:
    """Map 1080p/1440p/2160p prices onto each size in `sizes` (portrait sizes cost as their landscape twins)."""
    tiers = {1080: per_second[0], 1440: per_second[1], 2160: per_second[2]}
    return {(w, h): tiers[min(w, h)] for w, h in sizes}


def _tiny(
    model_id, recipe_name, recipe, architecture, audio_flag, audio_default, sample_rate, default_duration=2, **fields
) -> ModelSpec:
    """A demo/test stand-in: a hosted model's recipe and architecture (and its request fields) on tiny random
    weights, at small sizes."""
    return ModelSpec(
        id=model_id,
        name=f"ltx-runtime tiny, {recipe_name} recipe (random weights, demo and tests only)",
        recipe=recipe,
        weights="tiny",
        architecture=architecture,
        sizes=SizeRange(minimum=64, maximum=1024, step=8),
        durations=tuple(range(1, 11)),
        fps_values=tuple(range(8, 51)),
        default_size=(256, 144),
        default_duration=default_duration,
        default_fps=25,
        audio_flag=audio_flag,
        audio_default=audio_default,
        audio_sample_rate=sample_rate,
        demo_only=True,
        **fields,
    )


# --- LTX-2.5 (shared/docs/ltx25.md) ----------------------------------------------------------------------------------
# AIRs and fps sets: runware-sdk 1.8.0 runware/types/task_map.py (LightricksLtx25FastParams / ProParams). Sizes,
# durations, the default fps (25) and audio on by default: the Comfy Router pages of ltx/ltx-2-5-fast and -pro (Fast:
# 720p-2160p, Pro: 720p and 1080p, both orientations; 2-20 s). Without a duration the duration head picks it
# (default_duration None). Prices per second: third-party clients' quotes for 720p and 1080p [U]; none for 1440p/4K.
_LTX25_LANDSCAPE = ((1280, 720),) + _LANDSCAPE
_LTX25_PRO_LANDSCAPE = _LTX25_LANDSCAPE[:2]


def _both_orientations(sizes: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    return sizes + tuple((h, w) for w, h in sizes)


def _by_height(sizes: tuple[tuple[int, int], ...], per_second: dict[int, float]) -> dict:
    return {(w, h): per_second[min(w, h)] for w, h in sizes if min(w, h) in per_second}


def _ltx25(model_id: str, name: str, recipe: Recipe, folder: str, sizes, fps_values, prices) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name=name,
        recipe=recipe,
        weights=folder,
        architecture="ltx-2.5",
        sizes=_both_orientations(sizes),
        durations=(2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20),
        fps_values=fps_values,
        default_size=(1920, 1080),
        default_duration=None,
        default_fps=25,
        audio_flag=("settings", "audio"),
        audio_default=True,
        audio_sample_rate=48000,
        price_per_second=_by_height(_both_orientations(sizes), prices),
    )


_LTX25_MODELS = (
    _ltx25("lightricks:ltx@2.5-fast", "LTX-2.5 Fast", Recipe.FAST, "ltx-2.5-fast", _LTX25_LANDSCAPE,
           (24, 25, 48, 50), {720: 0.09, 1080: 0.13}),
    _ltx25("lightricks:ltx@2.5-pro", "LTX-2.5 Pro", Recipe.LTX25_PRO, "ltx-2.5-pro", _LTX25_PRO_LANDSCAPE,
           (24, 25, 50), {720: 0.12, 1080: 0.17}),
)  # fmt: skip


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            id="lightricks:2@1",
            name="LTX-2 Fast",
            recipe=Recipe.FAST,
            weights="ltx-2-fast",
            architecture="ltx-2",
            sizes=_LANDSCAPE,
            durations=(6, 8, 10),
            fps_values=(25, 50),
            default_size=(1920, 1080),
            default_duration=6,
            default_fps=25,
            audio_flag=_LTX2_AUDIO_FLAG,
            audio_default=False,
            audio_sample_rate=24000,
            price_per_second=_by_size(_LANDSCAPE, (0.04, 0.08, 0.16)),
            long_durations=(12, 14, 16, 18, 20),
            long_duration_formats=((1920, 1080, 25),),
        ),
        ModelSpec(
            id="lightricks:2@0",
            name="LTX-2 Pro",
            recipe=Recipe.PRO,
            weights="ltx-2-pro",
            architecture="ltx-2",
            sizes=_LANDSCAPE,
            durations=(6, 8, 10),
            # The seed page lists two values (25, 50); a newer hosted schema adds 24 (runware-contract.md section 8).
            fps_values=(25, 50),
            default_size=(1920, 1080),
            default_duration=6,
            default_fps=25,
            audio_flag=_LTX2_AUDIO_FLAG,
            audio_default=False,
            audio_sample_rate=24000,
            price_per_second=_by_size(_LANDSCAPE, (0.06, 0.12, 0.24)),
        ),
        ModelSpec(
            id="lightricks:ltx@2.3",
            name="LTX-2.3",
            recipe=Recipe.LTX23,
            weights="ltx-2.3",
            architecture="ltx-2.3",
            sizes=_LANDSCAPE + _PORTRAIT,
            durations=(6, 8, 10),
            fps_values=(24, 25, 48, 50),
            default_size=(1920, 1080),
            default_duration=6,
            default_fps=25,
            audio_flag=("settings", "audio"),
            audio_default=True,
            audio_sample_rate=48000,
            price_per_second=_by_size(_LANDSCAPE + _PORTRAIT, (0.08, 0.16, 0.32)),
            guidance=LTX_2_3_GUIDANCE,
            takes_loras=True,
            size_from_image=True,
        ),
        # --- issue 21: today's hosted LTX-2.3 Fast and open-weights LTX-2 (runware-sdk 1.8.0 task_map.py) ---
        ModelSpec(
            id="lightricks:ltx@2.3-fast",
            name="LTX-2.3 Fast",
            recipe=Recipe.FAST,  # the official DistilledPipeline on ltx-2.3-22b-distilled-1.1 (the HF card's "Fast")
            weights="ltx-2.3-fast",
            architecture="ltx-2.3",
            sizes=_LANDSCAPE + _PORTRAIT,
            # runware.ai/docs/models/lightricks-ltx-2-3-fast.md: 6/8/10 s at any size with "any" fps; 12-20 s at
            # 1920x1080 and 1080x1920 with 24 or 25 fps. "Any fps" is read as the LTX-2.3 family's four rates.
            durations=(6, 8, 10),
            fps_values=(24, 25, 48, 50),
            default_size=(1920, 1080),
            default_duration=6,
            default_fps=25,
            audio_flag=("settings", "audio"),
            audio_default=True,
            audio_sample_rate=48000,
            price_per_second=_by_size(_LANDSCAPE + _PORTRAIT, (0.06, 0.12, 0.24)),
            long_durations=(12, 14, 16, 18, 20),
            long_duration_formats=tuple((w, h, fps) for w, h in ((1920, 1080), (1080, 1920)) for fps in (24, 25)),
            takes_loras=True,
            size_from_image=True,
        ),
        ModelSpec(
            id="lightricks:ltx@2",
            name="LTX-2 (open weights)",
            recipe=Recipe.PRO,  # the dev model with guidance: the SDK type offers steps, CFGScale and negativePrompt
            weights="ltx-2-pro",  # the same files as LTX-2 Pro (dev transformer and distilled LoRA)
            architecture="ltx-2",
            # The SDK type makes width/height optional and the docs page (lightricks-ltx-2.md) lists no sizes: any
            # size on the 8-pixel grid up to 4K is taken (the recipe pads to its 64-pixel grid and crops).
            sizes=SizeRange(minimum=256, maximum=3840, step=8),
            # "duration and fps are free integers" (runware-contract.md section 8) with no published bounds: up to
            # 20 s (the LTX-2 family's longest hosted clip), and 8-50 fps (the tiny models' range).
            durations=tuple(range(1, 21)),
            fps_values=tuple(range(8, 51)),
            default_size=(1920, 1080),
            default_duration=5,  # the unit of its price, "$0.15 / 5 s"
            default_fps=24,  # ltx-pipelines PipelineParams.frame_rate
            # Not in the SDK type (settings is an opaque object there): the curated "ltx@" ids keep the switch in
            # settings.audio, default on (lightricks-ltx-2-3.md).
            audio_flag=("settings", "audio"),
            audio_default=True,
            audio_sample_rate=24000,
            flat_price_per_second=0.03,
            guidance=LTX_2_GUIDANCE,
        ),
        *_LTX25_MODELS,
        _tiny("ltx-runtime:tiny@1", "Fast", Recipe.FAST, "ltx-2", _LTX2_AUDIO_FLAG, False, 24000),
        _tiny("ltx-runtime:tiny-pro@1", "Pro", Recipe.PRO, "ltx-2", _LTX2_AUDIO_FLAG, False, 24000,
              guidance=LTX_2_GUIDANCE),
        _tiny("ltx-runtime:tiny-ltx23@1", "LTX-2.3", Recipe.LTX23, "ltx-2.3", ("settings", "audio"), True, 48000,
              guidance=LTX_2_3_GUIDANCE, takes_loras=True),
        _tiny("ltx-runtime:tiny-ltx23-fast@1", "LTX-2.3 Fast", Recipe.FAST, "ltx-2.3", ("settings", "audio"), True,
              48000, takes_loras=True),
        _tiny("ltx-runtime:tiny-ltx25@1", "LTX-2.5 Fast", Recipe.FAST, "ltx-2.5", ("settings", "audio"), True, 48000,
              None),
        _tiny("ltx-runtime:tiny-ltx25-pro@1", "LTX-2.5 Pro", Recipe.LTX25_PRO, "ltx-2.5", ("settings", "audio"), True,
              48000, None),
    )
}


def get_model(model_id: str) -> ModelSpec:
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownModelError(model_id, list(MODELS)) from None


def hosted_models() -> list[ModelSpec]:
    return [spec for spec in MODELS.values() if not spec.demo_only]
