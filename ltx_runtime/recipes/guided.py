"""LTX-2 Pro, LTX-2.3 and LTX-2.5 Pro: the guided two-stage recipe (Lightricks' `TI2VidTwoStagesPipeline`, through diffusers).

1. Encode the prompt and the official negative prompt (or the request's) once.
2. Stage 1 at half the generation size with the dev model: `steps` Euler steps (the request may set them, and the
   video CFG scale) on the official fixed schedule
   (`stage_1_sigmas`: the same at every size), with the official guidance: video CFG 3.0, STG 1.0 on one block,
   modality 3.0, rescale 0.7; audio CFG 7.0, STG 1.0, modality 3.0, rescale 0.7. The distilled LoRA is off.
3. The x2 spatial latent upsampler.
4. Stage 2 at full size with the distilled LoRA switched on (loaded once with the model, never reloaded): the 3
   stage-2 sigmas, guidance off; the stage-1 audio is re-noised and refined with the video, as officially, but the
   clip keeps the stage-1 audio (ltx-pipelines since 63fd9a4: stage 2 refines video only). The LoRA is switched
   off again afterwards. A request's own LoRAs are on in both stages (with the distilled one in stage 2).
Audio-to-video (LTX-2 Pro and LTX-2.3, Lightricks' `A2VidPipelineTwoStage`): the given audio is encoded by the audio VAE
once and held fixed, clean at timestep 0, in both stages while the video is denoised with the same guidance; the
clip's audio is that input itself (the engine muxes it), not a decode of the latents.
Parameters: Lightricks' `LTX_2_PARAMS` / `LTX_2_3_PARAMS` / `LTX_2_4_PARAMS` (ltx-pipelines utils/constants.py;
ltx2-models.md section 2). The guided pipeline (ti2vid_two_stages.py) keeps plain Euler on every generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

from ..catalog import GUIDANCE_BY_RECIPE, ModelSpec, Recipe
from ..geometry import GenerationPlan
from ..request import GenerationRequest
from ..weights import DISTILLED_LORA, Components
from . import (
    CROSS_TIMESTEP,
    LatentsCallback,
    RecipeOutput,
    StageClock,
    StepCallback,
    ConditioningImage,
    audio_held,
    clean_tokens_kept,
    cross_attention_gates,
    first_frame_marked,
    encode_soundtrack,
    image_conditioning,
    loras_on,
    pipelines_for,
    request_adapters,
    soundtrack_latent_frames,
    step_reporter,
    unshifted_scheduler,
    upsample_and_refine,
)

NEGATIVE_PROMPT = (
    "has_subtitles, has_blurbox, transition from black, transition to black, speech_ending_short, "
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, "
    "grainy texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, "
    "deformed facial features, asymmetrical face, missing facial features, extra limbs, disfigured hands, "
    "wrong hand count, artifacts around text, inconsistent perspective, camera shake, incorrect depth of "
    "field, background too sharp, background clutter, distracting reflections, harsh shadows, inconsistent "
    "lighting direction, color banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny "
    "valley effect, incorrect ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, "
    "mismatched lip sync, silent or muted audio, distorted voice, robotic voice, echo, background noise, "
    "off-sync audio, incorrect dialogue, added dialogue, repetitive speech, jittery movement, awkward "
    "pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, flat lighting, "
    "inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)
"""The official negative prompt: `DEFAULT_NEGATIVE_PROMPT` in Lightricks/LTX-2 packages/ltx-pipelines/src/
ltx_pipelines/utils/constants.py at release v1.2.0 (commit 400fd31). diffusers 0.42.1 carries the older text, without
the five leading caption tags (added in LTX-2 commit 2362161)."""

SCHEDULE_SHIFT = 2.05
"""The official scheduler's shift at its 4096-token anchor (`LTX2Scheduler.execute` called without a latent)."""
SCHEDULE_TERMINAL = 0.1
"""The last non-zero sigma after the official stretch."""


def stage_1_sigmas(steps: int) -> list[float]:
    """The official guided stage-1 schedule without its final 0 (diffusers' scheduler appends it): ltx-core
    `LTX2Scheduler().execute(steps)`, which `TI2VidTwoStagesPipeline` calls without a latent, so the shift is 2.05 at
    every size. `linspace(1, 0, steps + 1)` without the 0, shifted by `e^2.05 / (e^2.05 + 1/s - 1)`, then stretched
    so that the last sigma is 0.1. diffusers' own dynamic shift depends on the token count and breaks at hosted
    sizes (ltx2-models.md section 2a, item 1), so the recipe passes these sigmas to an unshifted scheduler."""
    sigmas = np.linspace(1.0, 0.0, steps + 1)[:-1]
    sigmas = math.exp(SCHEDULE_SHIFT) / (math.exp(SCHEDULE_SHIFT) + (1 / sigmas - 1))
    one_minus = 1.0 - sigmas
    return (1.0 - one_minus * (1.0 - SCHEDULE_TERMINAL) / one_minus[-1]).tolist()


@dataclass(frozen=True)
class GuidedParams:
    steps: int
    stg_block: int
    video_cfg: float
    video_stg: float = 1.0
    video_modality: float = 3.0
    video_rescale: float = 0.7
    audio_cfg: float = 7.0
    audio_stg: float = 1.0
    audio_modality: float = 3.0
    audio_rescale: float = 0.7

    def guidance(self) -> dict:
        return dict(
            guidance_scale=self.video_cfg,
            stg_scale=self.video_stg,
            modality_scale=self.video_modality,
            guidance_rescale=self.video_rescale,
            audio_guidance_scale=self.audio_cfg,
            audio_stg_scale=self.audio_stg,
            audio_modality_scale=self.audio_modality,
            audio_guidance_rescale=self.audio_rescale,
            spatio_temporal_guidance_blocks=[self.stg_block],
        )


def _official(recipe: Recipe, stg_block: int) -> GuidedParams:
    """The official parameters: the steps and video CFG from the catalog (what a request may set), the rest here."""
    limits = GUIDANCE_BY_RECIPE[recipe]
    return GuidedParams(steps=limits.default_steps, stg_block=stg_block, video_cfg=limits.default_cfg)


PARAMS = {
    Recipe.PRO: _official(Recipe.PRO, stg_block=29),  # LTX-2.0 dev: 40 steps
    Recipe.LTX23: _official(Recipe.LTX23, stg_block=28),  # LTX-2.3 dev: 30 steps
    # LTX-2.5 dev: `LTX_2_4_PARAMS`, the params of every checkpoint from 2.4 on: 2.3's, but for the image CRF (18),
    # which diffusers' `resolve_default_image_crf` reads off the Gemma 4 text encoder (engine.image_crf).
    Recipe.LTX25_PRO: _official(Recipe.LTX25_PRO, stg_block=28),
}


def params_for(spec: ModelSpec, request: GenerationRequest) -> GuidedParams:
    """The official parameters with what the request sets: `steps` and the video CFG scale (`CFGScale` on the wire;
    the audio CFG stays the official 7.0, as the official CLI's `--cfg-guidance-scale` also leaves it)."""
    params = PARAMS[spec.recipe]
    return replace(
        params,
        steps=params.steps if request.steps is None else request.steps,
        video_cfg=params.video_cfg if request.guidance_scale is None else request.guidance_scale,
    )


def stage_1_steps(spec: ModelSpec, request: GenerationRequest) -> int:
    return params_for(spec, request).steps


def run(
    components: Components,
    spec: ModelSpec,
    plan: GenerationPlan,
    request: GenerationRequest,
    generator: torch.Generator,
    on_step: StepCallback,
    images: tuple[ConditioningImage, ...] = (),
    after_encoding: Callable[[], None] | None = None,
    on_latents: LatentsCallback | None = None,
    soundtrack: np.ndarray | None = None,
) -> RecipeOutput:
    """`soundtrack`: audio-to-video, the clip's given audio (float32 stereo [samples, 2] at the audio VAE's rate, at
    least the generated frames long), encoded and held fixed in both stages (ltx-pipelines `A2VidPipelineTwoStage`);
    the output's audio latents are then its encoding."""
    params = params_for(spec, request)
    total = params.steps + len(STAGE_2_DISTILLED_SIGMA_VALUES)
    negative_prompt = NEGATIVE_PROMPT if request.negative_prompt is None else request.negative_prompt
    denoise, upsample = pipelines_for(components, unshifted_scheduler(components.pipeline), images)
    clock = StageClock(denoise.device)

    transformer = denoise.transformer
    with torch.inference_mode(), cross_attention_gates(transformer), first_frame_marked(transformer), \
            clean_tokens_kept(transformer):
        prompt_embeds, prompt_mask, negative_embeds, negative_mask = components.prompt_cache.encode(
            denoise, request.prompt, negative_prompt
        )
        clock.lap("text_encoding")
        if after_encoding:
            after_encoding()
        held = None
        if soundtrack is not None:
            held = encode_soundtrack(denoise, soundtrack, soundtrack_latent_frames(denoise, plan))
            clock.lap("audio_encoding")

        # The request's LoRAs in both stages; stage 2 adds the distilled LoRA (ti2vid_two_stages.py: stage 1 gets
        # `loras`, stage 2 `loras + distilled_lora`).
        user_loras = request_adapters(request)
        with loras_on(denoise, user_loras), audio_held(denoise, held):
            video_latents, audio_latents = denoise(
                prompt_embeds=prompt_embeds,
                prompt_attention_mask=prompt_mask,
                negative_prompt_embeds=negative_embeds,
                negative_prompt_attention_mask=negative_mask,
                width=plan.stage1_width,
                height=plan.stage1_height,
                num_frames=plan.gen_frames,
                frame_rate=float(plan.fps),
                audio_latents=held,
                sigmas=stage_1_sigmas(params.steps),
                num_inference_steps=params.steps,
                generator=generator,
                output_type="latent",
                return_dict=False,
                callback_on_step_end=step_reporter(on_step, 0, total, on_latents),
                use_cross_timestep=CROSS_TIMESTEP,
                **params.guidance(),
                **image_conditioning(denoise, images, plan, plan.stage1_width, plan.stage1_height),
            )
        clock.lap("stage_1")
        if held is not None:
            audio_latents = held

        with loras_on(denoise, [(DISTILLED_LORA, 1.0), *user_loras]), audio_held(denoise, held):
            video_latents, _ = upsample_and_refine(
                denoise, upsample, plan, video_latents, audio_latents, images, clock,
                prompt_embeds=prompt_embeds, prompt_attention_mask=prompt_mask, generator=generator,
                callback_on_step_end=step_reporter(on_step, params.steps, total), use_cross_timestep=CROSS_TIMESTEP,
            )  # fmt: skip

    return RecipeOutput(video_latents=video_latents, audio_latents=audio_latents, timings=clock.timings)
