"""Lightricks' ltx-core / ltx-pipelines 1.2.0 (Lightricks/LTX-2 commit 400fd31, the first release with LTX-2.5) run
on tiny LTX-2.5 split files, stage by stage: the reference side of scripts/ltx25_parity.py. Runs in its own venv (the
1.2.0 packages are not on PyPI; docs/fidelity.md says how to make it), never in the project's process and never in CI:

    ORACLE_VENV/bin/python scripts/ltx25_oracle.py SPLIT_FOLDER OUTPUT.safetensors [--case CASE] [--dtype DTYPE]
        [--steps N] [--stg-block B] [--image PATH] [--last PATH] [--soundtrack PATH]

Cases: `fast` (`DistilledPipeline`, text to video; with --image image to video, with --last too keyframes, the first
and the last frame) and `pro` (`TI2VidTwoStagesPipeline` on the dev file: N guided stage-1 steps with
`LTX_2_4_PARAMS`' guidance, STG on block B, stage 2 with the distilled LoRA; --image and --last as for `fast`: both
stages conditioned by `combined_image_conditionings`, as that pipeline does; with --soundtrack audio-to-video,
`A2VidPipelineTwoStage`'s body: a waveform [1, 2, samples] at the audio encoder's rate, saved as `waveform` in a
safetensors file, encoded and held fixed in both stages, the default audio guider). --dtype float32 (default: the
pipelines' hard-coded bf16 replaced) or bfloat16 (theirs).

Shims, in this process only: `torchaudio` is a stub where it does not import (no wheel loads against torch 2.13;
ltx-core uses it only for audio-to-video, which needs 2.11.1's pure-torch part, its compiled ops removed), `torch.cuda.synchronize` is a no-op (called unconditionally), and the Gemma processor is not built
(ltx-core builds it with the text encoder for prompt enhancement, which the 2.5 encoder is not used for; its image
processor needs torchvision). In float32, the transformer is cast after ltx-core builds it in the file's dtype, and
the distilled LoRA is fused in float32 (ltx-core fuses in bf16 whatever the dtype asked for); the audio VAE and
vocoder decode in float32 (in bf16 ltx-core's vocoder fails on the CPU: it relies on CUDA autocast).
"""

import argparse
import importlib.machinery
import sys
import types
from dataclasses import replace
from functools import partial
from pathlib import Path

try:
    import torchaudio  # noqa: F401
except ImportError:
    torchaudio = types.ModuleType("torchaudio")
    torchaudio.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = torchaudio

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

torch.cuda.synchronize = lambda *args, **kwargs: None
DEVICE = torch.device("cpu")
PROMPT, SEED, HEIGHT, WIDTH, FRAMES, FPS = "a cat over the ocean", 10, 64, 128, 17, 25.0


def no_processor() -> None:
    import ltx_core.text_encoders.gemma.encoders.base_encoder as base_encoder

    base_encoder.build_gemma_processor = lambda assets, tokenizer: None


def paths(root: Path, role: str):
    from ltx_pipelines.utils.model_paths import ModelPaths

    (transformer,) = (root / "diffusion_models").glob(f"*-{role}-transformer*.safetensors")
    (text_encoder,) = (root / "text_encoders").glob("*.safetensors")
    (video_vae,) = (root / "vae").glob("*video-vae-conv*.safetensors")
    (audio_vae,) = (root / "vae").glob("*audio-vae*.safetensors")
    (duration_head,) = (root / "model_patches").glob("*.safetensors")
    (upsampler,) = (root / "latent_upscale_models").glob("*spatial*.safetensors")
    model_paths = ModelPaths.from_split(transformer_path=str(transformer), text_encoder_path=str(text_encoder),
                                        video_vae_path=str(video_vae), audio_vae_path=str(audio_vae),
                                        duration_head_path=str(duration_head))  # fmt: skip
    return model_paths, str(upsampler)


def recording_noiser(seed: int):
    """ltx-core's GaussianNoiser, keeping each noise tensor it draws (token layout, drawing order: stage-1 video,
    stage-1 audio, stage-2 video, stage-2 audio) in its `drawn`."""
    from ltx_core.components.noisers import GaussianNoiser

    class RecordingNoiser(GaussianNoiser):
        drawn: list[torch.Tensor] = []

        def _sample_noise(self, latent_state):
            self.drawn.append(super()._sample_noise(latent_state))
            return self.drawn[-1]

    return RecordingNoiser(torch.Generator().manual_seed(seed))


class RecordingStepper:
    """A diffusion step that keeps what it returns (video, then audio, every step)."""

    def __init__(self, stepper):
        self.stepper, self.outputs = stepper, []

    def step(self, *args, **kwargs):
        self.outputs.append(self.stepper.step(*args, **kwargs))
        return self.outputs[-1]


def float32_lora_fuse(stage):
    """The stage with its LoRA fused in float32 (ltx-core's own rule fuses in bf16)."""
    from ltx_core.loader.fuse_loras import FuseRule

    def fuse(key, weight, deltas, model_sd):
        return {key: deltas.add_(weight.to(torch.float32))}

    builder = stage._transformer_builder
    return stage.with_builder(builder.with_fuse_rule(FuseRule(aggregation_dtype=torch.float32, fuse_fn=fuse)))


def run(root: Path, case: str, dtype: torch.dtype, steps: int, stg_block: int, images,
        soundtrack: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The body of DistilledPipeline.__call__ (case fast) or TI2VidTwoStagesPipeline.__call__ (case pro) of 1.2.0,
    step for step with its own blocks, in `dtype` instead of its hard-coded bf16; num_frames given (the duration
    head is asked separately). `images`: ImageConditioningInput (conditioned on as the pipelines do:
    `combined_image_conditionings` at each stage's size). `soundtrack` (case pro): A2VidPipelineTwoStage.__call__'s
    body instead, its audio encoded and frozen in both stages."""
    from ltx_core.components.diffusion_steps import EulerAncestralDiffusionStep, EulerDiffusionStep
    from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams, create_multimodal_guider_factory
    from ltx_core.components.schedulers import LTX2Scheduler
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_core.model.audio_vae import encode_audio
    from ltx_core.types import Audio, AudioLatentShape
    from ltx_pipelines import distilled
    from ltx_pipelines.utils.blocks import (
        AudioConditioner,
        AudioDecoder,
        DiffusionStage,
        DurationPredictor,
        ImageConditioner,
        PromptEncoder,
        VideoDecoder,
        VideoUpsampler,
    )
    from ltx_pipelines.utils.constants import (
        DEFAULT_NEGATIVE_PROMPT,
        DISTILLED_SIGMAS,
        STAGE_2_DISTILLED_SIGMAS,
        detect_params,
    )
    from ltx_pipelines.utils.denoisers import FactoryGuidedDenoiser, GuidedDenoiser, SimpleDenoiser
    from ltx_pipelines.utils.helpers import combined_image_conditionings
    from ltx_pipelines.utils.media_io.decode import decode_image, preprocess
    from ltx_pipelines.utils.samplers import _get_plain_noise, euler_ancestral_denoising_loop
    from ltx_pipelines.utils.types import ModalitySpec

    no_processor()
    # DiffusionStage builds the transformer in the file's dtype (bf16, the pipelines' own); `dtype` here
    build = DiffusionStage._build_transformer
    DiffusionStage._build_transformer = lambda self, **kwargs: build(self, **kwargs).to(dtype)
    guided = case == "pro"
    model_paths, upsampler_path = paths(root, "dev" if guided else "distilled")
    params = detect_params(model_paths.transformer())
    image_conditioner = ImageConditioner(model_paths.video_vae(), dtype, DEVICE)
    outputs = {"stage_2_sigmas": STAGE_2_DISTILLED_SIGMAS.double(),
               "ancestral": torch.tensor(distilled.should_use_ancestral_sampler(model_paths.transformer())),
               "image_crf": torch.tensor(params.default_image_crf),
               "image_crf_of_the_vae_file": torch.tensor(image_conditioner.default_image_crf)}  # fmt: skip
    images = image_conditioner.resolve_crf(images)  # an unset CRF: the one of the VAE file's model_version
    prompts = [PROMPT, DEFAULT_NEGATIVE_PROMPT] if guided else [PROMPT]
    contexts = PromptEncoder(model_paths, dtype, DEVICE)(prompts)
    video_context, audio_context = contexts[0].video_encoding, contexts[0].audio_encoding
    outputs.update(video_context=video_context, audio_context=audio_context)

    if case == "fast" and not images:
        predictor = DurationPredictor.from_checkpoint(model_paths.duration_head(), dtype, DEVICE)
        outputs["duration_seconds"] = predictor._head(video_context, audio_context)
        for fps in (24, 25, 48, 50):
            outputs[f"duration_frames_{fps}"] = torch.tensor(predictor(video_context, audio_context, frame_rate=fps))

    for index, image in enumerate(images):  # what the encoder is given: decoded, re-compressed at the CRF
        outputs[f"image_{index}_pixels"] = torch.from_numpy(preprocess(decode_image(image.path), image.crf))

    def conditionings(width: int, height: int, stage: int):
        items = image_conditioner(lambda encoder: combined_image_conditionings(
            images=images, height=height, width=width, video_encoder=encoder, dtype=dtype, device=DEVICE))  # fmt: skip
        for index, item in enumerate(items):
            outputs[f"image_{index}_latent_stage_{stage}"] = getattr(item, "latent", getattr(item, "keyframes", None))
        return items

    audio_1_spec = audio_2_spec = None  # text or images: the audio is generated
    if soundtrack is not None:  # a2vid_two_stage.py: encoded, cut to the clip, frozen and never noised
        held = AudioConditioner(model_paths.audio_vae(), dtype, DEVICE)(
            lambda encoder: encode_audio(Audio(waveform=soundtrack, sampling_rate=encoder.sample_rate),
                                         encoder, None))  # fmt: skip
        held = held[:, :, : AudioLatentShape.from_duration(batch=1, duration=FRAMES / FPS, channels=8,
                                                            mel_bins=16).frames]  # fmt: skip
        audio_1_spec = audio_2_spec = ModalitySpec(context=audio_context, frozen=True, noise_scale=0.0,
                                                   initial_latent=held)  # fmt: skip

    noiser = recording_noiser(SEED)
    stepper = RecordingStepper(EulerDiffusionStep())
    stage = DiffusionStage.from_checkpoint(model_paths.transformer(), dtype, DEVICE)
    shape_1 = dict(width=WIDTH // 2, height=HEIGHT // 2, frames=FRAMES, fps=FPS)
    video_1 = ModalitySpec(context=video_context, conditionings=conditionings(WIDTH // 2, HEIGHT // 2, 1))
    if guided:
        sigmas_1 = LTX2Scheduler().execute(steps=steps).to(torch.float32)
        factories = {
            f"{modality}_guider_factory": create_multimodal_guider_factory(
                params=replace(guider, stg_blocks=[stg_block]), negative_context=negative)
            for modality, guider, negative in (
                ("video", params.video_guider_params, contexts[1].video_encoding),
                ("audio", params.audio_guider_params, contexts[1].audio_encoding))
        }  # fmt: skip
        outputs["guider_params"] = torch.tensor([[p.cfg_scale, p.stg_scale, p.rescale_scale, p.modality_scale,
                                                  p.skip_step, *p.stg_blocks] for p in
                                                 (params.video_guider_params, params.audio_guider_params)])  # fmt: skip
        outputs["steps"] = torch.tensor(params.num_inference_steps)
        denoiser = FactoryGuidedDenoiser(v_context=video_context, a_context=audio_context, **factories)
        if soundtrack is not None:  # a2vid_two_stage.py: the video guider, and an audio guider's defaults
            denoiser = GuidedDenoiser(v_context=video_context, a_context=audio_context, audio_guider=MultiModalGuider(
                params=MultiModalGuiderParams()), video_guider=MultiModalGuider(params=replace(
                    params.video_guider_params, stg_blocks=[stg_block]), negative_context=contexts[1].video_encoding))  # fmt: skip
        state_1, audio_1 = stage(
            denoiser=denoiser, sigmas=sigmas_1, noiser=noiser, **shape_1, video=video_1,
            audio=audio_1_spec or ModalitySpec(context=audio_context), stepper=stepper,
        )  # fmt: skip
        outputs["stage_1_video_step_1"] = stepper.outputs[0]
        stage_2 = DiffusionStage.from_checkpoint(model_paths.transformer(), dtype, DEVICE, loras=(
            LoraPathStrengthAndSDOps(str(next((root / "loras").glob("*.safetensors"))), 1.0,
                                     LTXV_LORA_COMFY_RENAMING_MAP),))  # fmt: skip
        if dtype == torch.float32:
            stage_2 = float32_lora_fuse(stage_2)
    else:
        ancestral_noise = []

        def recording_noise(x, generator):
            noise = _get_plain_noise(x, generator)
            ancestral_noise.append(noise)
            return noise

        sigmas_1 = DISTILLED_SIGMAS.to(torch.float32)
        state_1, audio_1 = stage(
            denoiser=SimpleDenoiser(video_context, audio_context), sigmas=sigmas_1, noiser=noiser, **shape_1,
            video=video_1, audio=ModalitySpec(context=audio_context),
            stepper=EulerAncestralDiffusionStep(eta=distilled.ANCESTRAL_ETA, s_noise=distilled.ANCESTRAL_S_NOISE),
            loop=partial(euler_ancestral_denoising_loop, noise_seed=SEED + distilled.ANCESTRAL_NOISE_SEED_OFFSET,
                         model_dtype=dtype, new_noise_fn=recording_noise),
        )  # fmt: skip
        outputs.update({f"ancestral_noise_{index}": noise for index, noise in enumerate(ancestral_noise)})
        stage_2 = stage
    outputs["stage_1_sigmas"] = sigmas_1.double()
    upsampled = VideoUpsampler(model_paths.video_vae(), upsampler_path, dtype, DEVICE)(state_1.latent[:1])
    sigmas_2 = STAGE_2_DISTILLED_SIGMAS.to(torch.float32)
    video_2, audio_2 = stage_2(
        denoiser=SimpleDenoiser(video_context, audio_context), sigmas=sigmas_2, noiser=noiser, width=WIDTH,
        height=HEIGHT, frames=FRAMES, fps=FPS,
        video=ModalitySpec(context=video_context, conditionings=conditionings(WIDTH, HEIGHT, 2),
                           noise_scale=sigmas_2[0].item(), initial_latent=upsampled),
        audio=audio_2_spec or ModalitySpec(context=audio_context, noise_scale=sigmas_2[0].item(),
                                           initial_latent=audio_1.latent),
    )  # fmt: skip
    # TI2VidTwoStagesPipeline keeps stage 1's audio (stage 2 refines video only); DistilledPipeline stage 2's
    audio_out = audio_1 if guided else audio_2
    # untiled: the pipeline's automatic tiling makes one tile of a clip this small
    frames = torch.cat(list(VideoDecoder(model_paths.video_vae(), dtype, DEVICE)(video_2.latent, None,
                                                                                 torch.Generator().manual_seed(SEED))))  # fmt: skip
    # the vocoder runs in float32 (on CUDA ltx-core autocasts it; CPU autocast takes no float32, and bf16 fails)
    audio = AudioDecoder(model_paths.audio_vae(), torch.float32, DEVICE)(audio_out.latent.float())
    outputs.update({f"noise_{index}": noise for index, noise in enumerate(noiser.drawn)})
    outputs.update(stage_1_video=state_1.latent, stage_1_audio=audio_1.latent, upsampled=upsampled,
                   video=video_2.latent, audio=audio_out.latent, frames=frames, waveform=audio.waveform,
                   sample_rate=torch.tensor(audio.sampling_rate))  # fmt: skip
    return outputs


def main() -> None:
    from ltx_pipelines.utils.args import ImageConditioningInput

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("target")
    parser.add_argument("--case", choices=("fast", "pro"), default="fast")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--stg-block", type=int, default=28)
    parser.add_argument("--image", help="a first frame (frame 0)")
    parser.add_argument("--last", help="a last frame (frame FRAMES - 1), with --image")
    parser.add_argument("--crf", type=int, help="the images' CRF (default: what the pipeline resolves)")
    parser.add_argument("--soundtrack", help="audio-to-video (case pro): a safetensors file with a `waveform`")
    args = parser.parse_args()
    images = [ImageConditioningInput(path, frame, 1.0, args.crf)
              for path, frame in ((args.image, 0), (args.last, FRAMES - 1)) if path]  # fmt: skip
    soundtrack = load_file(args.soundtrack)["waveform"] if args.soundtrack else None
    with torch.inference_mode():
        outputs = run(args.root, args.case, getattr(torch, args.dtype), args.steps, args.stg_block, images,
                      soundtrack)  # fmt: skip
    save_file({key: value.contiguous() for key, value in outputs.items()}, args.target)


if __name__ == "__main__":
    main()
