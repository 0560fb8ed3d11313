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


class Recipe(str, Enum):
    FAST = "fast"  # LTX-2 distilled: 8 sigmas at half resolution, x2 latent upsampler, 3 refine sigmas, no guidance
    PRO = "pro"  # LTX-2 dev: 40 guided steps at half resolution, x2 upsampler, distilled-LoRA 3-step refine
    LTX23 = "ltx23"  # LTX-2.3 22B: guided two-stage recipe with the 2.3 parameters


PARAMETER_COUNTS = {
    "ltx-2": dict(transformer=18_876_174_592, text_encoder=12_202_563_392, connectors=1_431_475_200,
                  vae=1_222_479_601, audio_vae=53_248_146, vocoder=55_592_802, latent_upsampler=497_867_904),
    "ltx-2.3": dict(transformer=18_988_838_144, text_encoder=12_202_563_392, connectors=3_172_227_584,
                    vae=726_105_969, audio_vae=53_248_146, vocoder=128_537_448, latent_upsampler=497_867_904),
}  # fmt: skip
"""Parameters per component of each architecture's released checkpoints, for memory arithmetic without building a
model (a test counts them again on the real architectures: fullsize.py)."""


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
        return f"width and height multiples of {self.step} from {self.minimum} to {self.maximum}"


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
    default_duration: int
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
    long_duration_format: tuple[int, int, int] | None = None
    """(width, height, fps) of the long durations: Lightricks' hosted matrix makes Fast clips above 10 s at
    1920x1080 and 25 fps only (docs.ltx.video/models; runware-contract.md section 9)."""

    @property
    def needs_distilled_lora(self) -> bool:
        """The guided recipes refine stage 2 with the distilled LoRA; Fast runs the distilled model itself."""
        return self.recipe is not Recipe.FAST

    def allows_size(self, width: int, height: int) -> bool:
        if isinstance(self.sizes, SizeRange):
            return self.sizes.allows(width, height)
        return (width, height) in self.sizes

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
            if (width, height, fps) == self.long_duration_format:
                return None
            long_width, long_height, long_fps = self.long_duration_format
            return (
                f"{self.id} makes clips above {max(self.durations)} s at {long_width}x{long_height} and {long_fps} fps "
                f"only, not {width}x{height} at {fps} fps"
            )
        return f"{self.id} takes durations of {self.describe_durations()} seconds, not {duration!r}"

    def describe_durations(self) -> str:
        """"6, 8, 10 (and 12, ... at 1920x1080 25 fps)": every duration, with the format the long ones need."""
        allowed = ", ".join(map(str, self.durations))
        if self.long_durations:
            long_width, long_height, long_fps = self.long_duration_format
            allowed += f" (and {', '.join(map(str, self.long_durations))} at {long_width}x{long_height} {long_fps} fps)"
        return allowed

    def describe_fps(self) -> str:
        """"25, 50", or "8-50" for a run of consecutive values."""
        values = self.fps_values
        if len(values) > 2 and values == tuple(range(values[0], values[-1] + 1)):
            return f"{values[0]}-{values[-1]}"
        return ", ".join(map(str, values))

    def hosted_price(self, width: int, height: int, duration: float) -> float | None:
        """What the hosted API charges for this clip, or None where it publishes no price."""
        per_second = self.price_per_second.get((width, height))
        return None if per_second is None else round(per_second * duration, 4)


_LANDSCAPE = ((1920, 1080), (2560, 1440), (3840, 2160))
_PORTRAIT = tuple((h, w) for w, h in _LANDSCAPE)
_LTX2_AUDIO_FLAG = ("providerSettings", "lightricks", "generateAudio")


def _by_size(sizes: tuple[tuple[int, int], ...], per_second: tuple[float, float, float]) -> dict:
    """Map 1080p/1440p/2160p prices onto each size in `sizes` (portrait sizes cost as their landscape twins)."""
    tiers = {1080: per_second[0], 1440: per_second[1], 2160: per_second[2]}
    return {(w, h): tiers[min(w, h)] for w, h in sizes}


def _tiny(model_id, recipe_name, recipe, architecture, audio_flag, audio_default, sample_rate) -> ModelSpec:
    """A demo/test stand-in: a hosted model's recipe and architecture on tiny random weights, at small sizes."""
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
        default_duration=2,
        default_fps=25,
        audio_flag=audio_flag,
        audio_default=audio_default,
        audio_sample_rate=sample_rate,
        demo_only=True,
    )


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
            long_duration_format=(1920, 1080, 25),
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
        ),
        _tiny("ltx-runtime:tiny@1", "Fast", Recipe.FAST, "ltx-2", _LTX2_AUDIO_FLAG, False, 24000),
        _tiny("ltx-runtime:tiny-pro@1", "Pro", Recipe.PRO, "ltx-2", _LTX2_AUDIO_FLAG, False, 24000),
        _tiny("ltx-runtime:tiny-ltx23@1", "LTX-2.3", Recipe.LTX23, "ltx-2.3", ("settings", "audio"), True, 48000),
    )
}


def get_model(model_id: str) -> ModelSpec:
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownModelError(model_id, list(MODELS)) from None


def hosted_models() -> list[ModelSpec]:
    return [spec for spec in MODELS.values() if not spec.demo_only]
