"""LTX-2 Fast: the distilled two-stage recipe (Lightricks' `DistilledPipeline`, through diffusers' LTX-2 pipelines).

1. Encode the prompt once (Gemma 3 + connectors run inside the pipeline; the embeddings are reused by both stages).
2. Stage 1 at half the generation size: the 8 distilled sigmas, guidance off (CFG 1, no STG, no modality guidance).
3. The x2 spatial latent upsampler.
4. Stage 2 at the full generation size: re-noise to the first stage-2 sigma, then the 3 stage-2 sigmas.
With a first-frame image, both stages run diffusers' image-to-video pipeline: stage 1 conditions on the image fitted
to the half size; for stage 2 the first latent frame is replaced by the image encoded at full size and kept clean.
The sigmas are used as published, so this recipe's scheduler does not shift them (`use_dynamic_shifting=False`).
Decoding is not part of the recipe: the engine streams it (see decode.py).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTX2ImageToVideoPipeline, LTX2LatentUpsamplePipeline, LTX2Pipeline
from PIL import Image
from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

from ..geometry import GenerationPlan
from ..weights import Components
from . import RecipeOutput, StageClock, StepCallback, encode_first_frame, fit_image, step_reporter

GUIDANCE_OFF = dict(
    guidance_scale=1.0,
    stg_scale=0.0,
    modality_scale=1.0,
    guidance_rescale=0.0,
    audio_guidance_scale=1.0,
    audio_stg_scale=0.0,
    audio_modality_scale=1.0,
    audio_guidance_rescale=0.0,
)
STAGE_1_STEPS = len(DISTILLED_SIGMA_VALUES)
STAGE_2_STEPS = len(STAGE_2_DISTILLED_SIGMA_VALUES)
TOTAL_STEPS = STAGE_1_STEPS + STAGE_2_STEPS


def _pipelines(components: Components, image_to_video: bool = False) -> tuple[LTX2Pipeline, LTX2LatentUpsamplePipeline]:
    """Pipelines around the already loaded modules: no module is copied, only the (tiny) scheduler is new."""
    base = components.pipeline
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(
        base.scheduler.config, use_dynamic_shifting=False, shift=1.0, shift_terminal=None
    )
    pipeline_class = LTX2ImageToVideoPipeline if image_to_video else LTX2Pipeline
    denoise = pipeline_class(**{**base.components, "scheduler": scheduler})
    denoise.set_progress_bar_config(disable=True)
    upsample = LTX2LatentUpsamplePipeline(vae=base.vae, latent_upsampler=components.latent_upsampler)
    upsample.set_progress_bar_config(disable=True)
    return denoise, upsample


def run(
    components: Components,
    plan: GenerationPlan,
    prompt: str,
    generator: torch.Generator,
    on_step: StepCallback,
    image: Image.Image | None = None,
) -> RecipeOutput:
    denoise, upsample = _pipelines(components, image_to_video=image is not None)
    clock = StageClock(denoise.device)

    with torch.inference_mode():
        prompt_embeds, prompt_mask, _, _ = denoise.encode_prompt(
            prompt, do_classifier_free_guidance=False, device=denoise.device
        )
        clock.lap("text_encoding")

        common = dict(
            prompt_embeds=prompt_embeds,
            prompt_attention_mask=prompt_mask,
            num_frames=plan.gen_frames,
            frame_rate=float(plan.fps),
            generator=generator,
            output_type="latent",
            return_dict=False,
            **GUIDANCE_OFF,
        )
        first_frame = {} if image is None else {"image": fit_image(image, plan.stage1_width, plan.stage1_height)}
        video_latents, audio_latents = denoise(
            width=plan.stage1_width,
            height=plan.stage1_height,
            sigmas=DISTILLED_SIGMA_VALUES,
            num_inference_steps=STAGE_1_STEPS,
            callback_on_step_end=step_reporter(on_step, 0, TOTAL_STEPS),
            **first_frame,
            **common,
        )
        clock.lap("stage_1")

        video_latents = upsample(latents=video_latents, output_type="latent", return_dict=False)[0]
        if image is not None:
            video_latents[:, :, :1] = encode_first_frame(denoise, image, plan.gen_width, plan.gen_height)
        clock.lap("upsample")

        video_latents, audio_latents = denoise(
            latents=video_latents,
            audio_latents=audio_latents,
            width=plan.gen_width,
            height=plan.gen_height,
            sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
            noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],
            num_inference_steps=STAGE_2_STEPS,
            callback_on_step_end=step_reporter(on_step, STAGE_1_STEPS, TOTAL_STEPS),
            **common,
        )
        clock.lap("stage_2")

    return RecipeOutput(video_latents=video_latents, audio_latents=audio_latents, timings=clock.timings)
