"""LTX-2 Pro and LTX-2.3: the guided two-stage recipe (Lightricks' `TI2VidTwoStagesPipeline`, through diffusers).

1. Encode the prompt and the official negative prompt once.
2. Stage 1 at half the generation size with the dev model: `steps` Euler steps on the model's own (dynamically
   shifted) schedule, with the official guidance: video CFG 3.0, STG 1.0 on one block, modality 3.0, rescale 0.7;
   audio CFG 7.0, STG 1.0, modality 3.0, rescale 0.7. The distilled LoRA is off.
3. The x2 spatial latent upsampler.
4. Stage 2 at full size with the distilled LoRA switched on (loaded once with the model, never reloaded): the 3
   stage-2 sigmas, guidance off. The LoRA is switched off again afterwards.
Parameters: Lightricks' `LTX_2_PARAMS` / `LTX_2_3_PARAMS` (ltx-pipelines utils/constants.py; ltx2-models.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT, STAGE_2_DISTILLED_SIGMA_VALUES
from PIL import Image

from ..catalog import Recipe
from ..geometry import GenerationPlan
from ..weights import DISTILLED_LORA, Components
from . import (
    RecipeOutput,
    StageClock,
    StepCallback,
    fit_image,
    pipelines_for,
    step_reporter,
    unshifted_scheduler,
    upsample_and_refine,
)


@dataclass(frozen=True)
class GuidedParams:
    steps: int
    stg_block: int
    video_cfg: float = 3.0
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


PARAMS = {
    Recipe.PRO: GuidedParams(steps=40, stg_block=29),  # LTX-2.0 dev
    Recipe.LTX23: GuidedParams(steps=30, stg_block=28),  # LTX-2.3 dev
}


def total_steps(recipe: Recipe) -> int:
    return PARAMS[recipe].steps + len(STAGE_2_DISTILLED_SIGMA_VALUES)


def run(
    components: Components,
    plan: GenerationPlan,
    prompt: str,
    generator: torch.Generator,
    on_step: StepCallback,
    image: Image.Image | None = None,
    after_encoding: Callable[[], None] | None = None,
    *,
    recipe: Recipe,
) -> RecipeOutput:
    params = PARAMS[recipe]
    total = total_steps(recipe)
    shifted = FlowMatchEulerDiscreteScheduler.from_config(components.pipeline.scheduler.config)
    denoise, upsample = pipelines_for(components, shifted, image is not None)
    clock = StageClock(denoise.device)

    with torch.inference_mode():
        prompt_embeds, prompt_mask, negative_embeds, negative_mask = components.prompt_cache.encode(
            denoise, prompt, DEFAULT_NEGATIVE_PROMPT
        )
        clock.lap("text_encoding")
        if after_encoding:
            after_encoding()

        denoise.disable_lora()
        first_frame = {} if image is None else {"image": fit_image(image, plan.stage1_width, plan.stage1_height)}
        video_latents, audio_latents = denoise(
            prompt_embeds=prompt_embeds,
            prompt_attention_mask=prompt_mask,
            negative_prompt_embeds=negative_embeds,
            negative_prompt_attention_mask=negative_mask,
            width=plan.stage1_width,
            height=plan.stage1_height,
            num_frames=plan.gen_frames,
            frame_rate=float(plan.fps),
            num_inference_steps=params.steps,
            generator=generator,
            output_type="latent",
            return_dict=False,
            callback_on_step_end=step_reporter(on_step, 0, total),
            **params.guidance(),
            **first_frame,
        )
        clock.lap("stage_1")

        denoise.scheduler = unshifted_scheduler(denoise)
        denoise.enable_lora()
        denoise.set_adapters([DISTILLED_LORA], [1.0])
        try:
            video_latents, audio_latents = upsample_and_refine(
                denoise, upsample, plan, video_latents, audio_latents, image, clock,
                prompt_embeds=prompt_embeds, prompt_attention_mask=prompt_mask, generator=generator,
                callback_on_step_end=step_reporter(on_step, params.steps, total),
            )  # fmt: skip
        finally:
            denoise.disable_lora()

    return RecipeOutput(video_latents=video_latents, audio_latents=audio_latents, timings=clock.timings)
