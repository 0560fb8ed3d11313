"""LTX-2 Fast: the distilled two-stage recipe (Lightricks' `DistilledPipeline`, through diffusers' LTX-2 pipelines).

1. Encode the prompt once (Gemma 3 + connectors run inside the pipeline; the embeddings are reused by both stages).
2. Stage 1 at half the generation size: the 8 distilled sigmas, guidance off (CFG 1, no STG, no modality guidance).
   LTX-2.5 samples this stage with Euler ancestral (eta 1, its own noise seeded seed + 10000: ancestral.py), as
   Lightricks' pipeline does for checkpoints from 2.5 on; earlier models with plain Euler.
3. The x2 spatial latent upsampler.
4. Stage 2 at the full generation size: re-noise to the first stage-2 sigma, then the 3 stage-2 sigmas; its audio
   is the clip's audio (the distilled pipeline keeps stage 2's audio).
A request's LoRAs are on in both stages, as in the official `DistilledPipeline`.
The sigmas are used as published, so this recipe's scheduler does not shift them (`use_dynamic_shifting=False`).
With frame images (prepared once, `decode_frame_image`), both stages are conditioned on them, as the official
`combined_image_conditionings` does: a first frame alone runs diffusers' image-to-video pipeline (stage 1 conditions
on the image encoded at the half size; for stage 2 the first latent frame is replaced by the image encoded at full
size and kept clean); keyframes at other frames run the keyframe pipeline, which appends them as clean tokens in both
stages (`image_conditioning`). Decoding is not part of the recipe: the engine streams it (decode.py).
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

from ..catalog import ModelSpec
from ..geometry import GenerationPlan
from ..request import GenerationRequest
from ..weights import Components
from . import (
    CROSS_TIMESTEP,
    GUIDANCE_OFF,
    LatentsCallback,
    RecipeOutput,
    StageClock,
    StepCallback,
    ConditioningImage,
    cross_attention_gates,
    first_frame_marked,
    image_conditioning,
    loras_on,
    pipelines_for,
    request_adapters,
    step_reporter,
    unshifted_scheduler,
    upsample_and_refine,
)
from .ancestral import ANCESTRAL_ARCHITECTURES, ancestral_scheduler

STAGE_1_STEPS = len(DISTILLED_SIGMA_VALUES)
TOTAL_STEPS = STAGE_1_STEPS + len(STAGE_2_DISTILLED_SIGMA_VALUES)


def stage_1_steps(spec: ModelSpec, request: GenerationRequest) -> int:
    return STAGE_1_STEPS  # fixed: the distilled schedule takes no step count


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
) -> RecipeOutput:
    deterministic = unshifted_scheduler(components.pipeline)
    denoise, upsample = pipelines_for(components, deterministic, images)
    if spec.architecture in ANCESTRAL_ARCHITECTURES:
        denoise.scheduler = ancestral_scheduler(deterministic, generator.initial_seed())
    clock = StageClock(denoise.device)

    adapters = request_adapters(request)
    with torch.inference_mode(), cross_attention_gates(denoise.transformer), first_frame_marked(denoise.transformer), \
            loras_on(denoise, adapters):  # fmt: skip
        prompt_embeds, prompt_mask, _, _ = components.prompt_cache.encode(denoise, request.prompt)
        clock.lap("text_encoding")
        if after_encoding:
            after_encoding()

        video_latents, audio_latents = denoise(
            prompt_embeds=prompt_embeds,
            prompt_attention_mask=prompt_mask,
            width=plan.stage1_width,
            height=plan.stage1_height,
            num_frames=plan.gen_frames,
            frame_rate=float(plan.fps),
            sigmas=DISTILLED_SIGMA_VALUES,
            num_inference_steps=STAGE_1_STEPS,
            generator=generator,
            output_type="latent",
            return_dict=False,
            callback_on_step_end=step_reporter(on_step, 0, TOTAL_STEPS, on_latents),
            use_cross_timestep=CROSS_TIMESTEP,
            **GUIDANCE_OFF,
            **image_conditioning(denoise, images, plan, plan.stage1_width, plan.stage1_height),
        )
        clock.lap("stage_1")

        denoise.scheduler = deterministic  # stage 2 is always plain Euler: 3 steps cannot absorb fresh noise
        video_latents, audio_latents = upsample_and_refine(
            denoise, upsample, plan, video_latents, audio_latents, images, clock,
            prompt_embeds=prompt_embeds, prompt_attention_mask=prompt_mask, generator=generator,
            callback_on_step_end=step_reporter(on_step, STAGE_1_STEPS, TOTAL_STEPS), use_cross_timestep=CROSS_TIMESTEP,
        )  # fmt: skip

    return RecipeOutput(video_latents=video_latents, audio_latents=audio_latents, timings=clock.timings)
