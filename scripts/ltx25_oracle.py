"""Lightricks' ltx-core / ltx-pipelines 1.2.0 (Lightricks/LTX-2 commit 400fd31, the first release with LTX-2.5) run
on tiny LTX-2.5 split files, stage by stage, in float32: the reference side of scripts/ltx25_parity.py. Runs in its
own venv (the 1.2.0 packages are not on PyPI; docs/fidelity.md says how to make it), never in the project's process
and never in CI:

    ORACLE_VENV/bin/python scripts/ltx25_oracle.py SPLIT_FOLDER OUTPUT.safetensors

Shims, in this process only: `torchaudio` is a stub (no wheel loads against torch 2.13; ltx-core uses it only for
audio-to-video), `torch.cuda.synchronize` is a no-op (called unconditionally), and the Gemma processor is not built
(ltx-core builds it with the text encoder for prompt enhancement, which the 2.5 encoder is not used for; its image
processor needs torchvision).
"""

import importlib.machinery
import sys
import types
from dataclasses import replace
from functools import partial
from pathlib import Path

torchaudio = types.ModuleType("torchaudio")
torchaudio.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
sys.modules["torchaudio"] = torchaudio

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.cuda.synchronize = lambda *args, **kwargs: None
DTYPE, DEVICE = torch.float32, torch.device("cpu")
PROMPT, SEED, HEIGHT, WIDTH, FRAMES, FPS = "a cat over the ocean", 10, 64, 128, 17, 25.0


def no_processor() -> None:
    import ltx_core.text_encoders.gemma.encoders.base_encoder as base_encoder

    base_encoder.build_gemma_processor = lambda assets, tokenizer: None


def paths(root: Path):
    from ltx_pipelines.utils.model_paths import ModelPaths

    (transformer,) = (root / "diffusion_models").glob("*-distilled-transformer*.safetensors")
    (text_encoder,) = (root / "text_encoders").glob("*.safetensors")
    (video_vae,) = (root / "vae").glob("*video-vae-conv*.safetensors")
    (audio_vae,) = (root / "vae").glob("*audio-vae*.safetensors")
    (duration_head,) = (root / "model_patches").glob("*.safetensors")
    (upsampler,) = (root / "latent_upscale_models").glob("*spatial*.safetensors")
    model_paths = ModelPaths.from_split(transformer_path=str(transformer), text_encoder_path=str(text_encoder),
                                        video_vae_path=str(video_vae), audio_vae_path=str(audio_vae),
                                        duration_head_path=str(duration_head))  # fmt: skip
    return model_paths, str(upsampler)


class RecordingNoiser:
    """ltx-core's GaussianNoiser in float32, keeping each noise tensor it draws (token layout, drawing order:
    stage-1 video, stage-1 audio, stage-2 video, stage-2 audio)."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn: list[torch.Tensor] = []

    def __call__(self, latent_state, noise_scale: float = 1.0):
        noise = torch.randn(*latent_state.latent.shape, dtype=latent_state.latent.dtype, generator=self.generator)
        self.drawn.append(noise)
        scaled_mask = latent_state.denoise_mask * noise_scale
        latent = noise * scaled_mask + latent_state.latent * (1 - scaled_mask)
        return replace(latent_state, latent=latent.to(latent_state.latent.dtype))


def run(root: Path) -> dict[str, torch.Tensor]:
    """DistilledPipeline.__call__ of 1.2.0, step for step with its own blocks, in float32 instead of its hard-coded
    bf16; text to video, num_frames given (the duration head is asked separately)."""
    from ltx_core.components.diffusion_steps import EulerAncestralDiffusionStep
    from ltx_pipelines import distilled
    from ltx_pipelines.utils.blocks import (
        AudioDecoder,
        DiffusionStage,
        DurationPredictor,
        PromptEncoder,
        VideoDecoder,
        VideoUpsampler,
    )
    from ltx_pipelines.utils.constants import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, detect_params
    from ltx_pipelines.utils.denoisers import SimpleDenoiser
    from ltx_pipelines.utils.samplers import _get_plain_noise, euler_ancestral_denoising_loop
    from ltx_pipelines.utils.types import ModalitySpec

    no_processor()
    # DiffusionStage builds the transformer in the file's dtype (bf16, the pipelines' own); float32 here
    build = DiffusionStage._build_transformer
    DiffusionStage._build_transformer = lambda self, **kwargs: build(self, **kwargs).to(DTYPE)
    model_paths, upsampler_path = paths(root)
    outputs = {"stage_1_sigmas": DISTILLED_SIGMAS.double(), "stage_2_sigmas": STAGE_2_DISTILLED_SIGMAS.double(),
               "ancestral": torch.tensor(distilled.should_use_ancestral_sampler(model_paths.transformer())),
               "image_crf": torch.tensor(detect_params(model_paths.transformer()).default_image_crf)}  # fmt: skip
    (context,) = PromptEncoder(model_paths, DTYPE, DEVICE)([PROMPT])
    video_context, audio_context = context.video_encoding, context.audio_encoding
    outputs.update(video_context=video_context, audio_context=audio_context)

    predictor = DurationPredictor.from_checkpoint(model_paths.duration_head(), DTYPE, DEVICE)
    outputs["duration_seconds"] = predictor._head(video_context, audio_context)
    for fps in (24, 25, 48, 50):
        outputs[f"duration_frames_{fps}"] = torch.tensor(predictor(video_context, audio_context, frame_rate=fps))

    noiser, ancestral_noise = RecordingNoiser(SEED), []

    def recording_noise(x, generator):
        noise = _get_plain_noise(x, generator)
        ancestral_noise.append(noise)
        return noise

    stage = DiffusionStage.from_checkpoint(model_paths.transformer(), DTYPE, DEVICE)
    sigmas_1 = DISTILLED_SIGMAS.to(torch.float32)
    video_1, audio_1 = stage(
        denoiser=SimpleDenoiser(video_context, audio_context), sigmas=sigmas_1, noiser=noiser, width=WIDTH // 2,
        height=HEIGHT // 2, frames=FRAMES, fps=FPS, video=ModalitySpec(context=video_context, conditionings=[]),
        audio=ModalitySpec(context=audio_context),
        stepper=EulerAncestralDiffusionStep(eta=distilled.ANCESTRAL_ETA, s_noise=distilled.ANCESTRAL_S_NOISE),
        loop=partial(euler_ancestral_denoising_loop, noise_seed=SEED + distilled.ANCESTRAL_NOISE_SEED_OFFSET,
                     model_dtype=DTYPE, new_noise_fn=recording_noise),
    )  # fmt: skip
    upsampled = VideoUpsampler(model_paths.video_vae(), upsampler_path, DTYPE, DEVICE)(video_1.latent[:1])
    sigmas_2 = STAGE_2_DISTILLED_SIGMAS.to(torch.float32)
    video_2, audio_2 = stage(
        denoiser=SimpleDenoiser(video_context, audio_context), sigmas=sigmas_2, noiser=noiser, width=WIDTH,
        height=HEIGHT, frames=FRAMES, fps=FPS,
        video=ModalitySpec(context=video_context, conditionings=[], noise_scale=sigmas_2[0].item(),
                           initial_latent=upsampled),
        audio=ModalitySpec(context=audio_context, noise_scale=sigmas_2[0].item(), initial_latent=audio_1.latent),
    )  # fmt: skip
    # untiled: the pipeline's automatic tiling makes one tile of a clip this small
    frames = torch.cat(list(VideoDecoder(model_paths.video_vae(), DTYPE, DEVICE)(video_2.latent, None,
                                                                                 torch.Generator().manual_seed(SEED))))  # fmt: skip
    audio = AudioDecoder(model_paths.audio_vae(), DTYPE, DEVICE)(audio_2.latent)
    outputs.update({f"noise_{index}": noise for index, noise in enumerate(noiser.drawn)})
    outputs.update({f"ancestral_noise_{index}": noise for index, noise in enumerate(ancestral_noise)})
    outputs.update(stage_1_video=video_1.latent, stage_1_audio=audio_1.latent, upsampled=upsampled,
                   video=video_2.latent, audio=audio_2.latent, frames=frames, waveform=audio.waveform,
                   sample_rate=torch.tensor(audio.sampling_rate))  # fmt: skip
    return outputs


def main() -> None:
    root, target = Path(sys.argv[1]), sys.argv[2]
    with torch.inference_mode():
        outputs = run(root)
    save_file({key: value.contiguous() for key, value in outputs.items()}, target)


if __name__ == "__main__":
    main()
