"""The official implementation (ltx-core / ltx-pipelines 1.0.0) as a test oracle. Runs in its own venv
(.venv-oracle, made by scripts/install.sh --test), never in the project's process:

    .venv-oracle/bin/python tests/engine/parity/oracle.py WEIGHTS_DIR INPUT.safetensors OUTPUT.safetensors TASK...

Tensors go in and out through safetensors files, named "task.tensor" (one process runs every task: importing
transformers and ltx-core is most of the time). Shims, all in this process only (ltx2-models.md 2a item 10):
torchaudio is 2.11.1's Python part (no wheel for torch 2.13 exists; 2.11.1's compiled ops do not load against it and
are removed by scripts/install.sh, which leaves the pure-torch MelSpectrogram and resample that ltx-core's
audio-to-video uses), torch.cuda.synchronize is a no-op (the pipelines call it unconditionally), and ltx-core's hard-coded Gemma-3-12B
config is replaced by the tiny Gemma folder's config.json.
"""

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

torch.cuda.synchronize = lambda *args, **kwargs: None
DTYPE = getattr(torch, os.environ.get("LTX_ORACLE_DTYPE", "float32"))
"""float32: the weights are bf16 values, and computing in float32 keeps both sides' rounding out of the way.
scripts/bf16_parity.py sets bfloat16, the official pipelines' own dtype."""


def use_tiny_gemma(gemma: Path) -> None:
    import ltx_core.text_encoders.gemma.encoders.encoder_configurator as configurator
    from ltx_core.text_encoders.gemma.config import Gemma3ConfigData, Gemma3TextConfig, Gemma3VisionConfig

    config = json.loads((gemma / "config.json").read_text())

    def known(cls, values):
        return {key: value for key, value in values.items() if key in cls.__dataclass_fields__}

    configurator.GEMMA3_CONFIG_FOR_LTX = Gemma3ConfigData(
        **known(Gemma3ConfigData, {k: v for k, v in config.items() if not k.endswith("_config")}),
        text_config=Gemma3TextConfig(**known(Gemma3TextConfig, config["text_config"])),
        vision_config=Gemma3VisionConfig(**known(Gemma3VisionConfig, config["vision_config"])),
    )


def ledger(root: Path, dev: bool = False):
    from ltx_pipelines.utils.model_ledger import ModelLedger

    name = "*-dev*.safetensors" if dev else "*-distilled*.safetensors"
    (checkpoint,) = (root / "checkpoints").glob(name)
    (upsampler,) = (root / "latent_upscale_models").glob("*.safetensors")
    (gemma,) = (path.parent for path in root.glob("*/tokenizer_config.json"))
    use_tiny_gemma(gemma)
    return ModelLedger(dtype=DTYPE, device=torch.device("cpu"), checkpoint_path=str(checkpoint),
                       gemma_root_path=str(gemma), spatial_upsampler_path=str(upsampler))  # fmt: skip


def upsampler(root, inputs):
    """The latent upsampler module on raw (denormalised) latents."""
    return {"latent": ledger(root).spatial_upsampler()(inputs["latent"])}


def vae_decode(root, inputs):
    """The video decoder on normalised latents (it un-normalises itself), then ltx-core's uint8 conversion."""
    decoded = ledger(root).video_decoder()(inputs["latent"])
    frames = (((decoded + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return {"decoded": decoded, "frames": frames}


def tiled_decode(root, inputs):
    """ltx-core's tiled decode (`decode_video`, float frames before the uint8 conversion) of a clip of several
    temporal tiles at v1.2.0's temporal tiles (80 frames / 24), 1.0.0's default ones (64 / 24), and with spatial
    tiles as well (128 px along the long side, overlapping by 64, plus 80 / 24 frames)."""
    from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

    decoder = ledger(root).video_decoder()
    frames_80 = TemporalTilingConfig(tile_size_in_frames=80, tile_overlap_in_frames=24)
    frames_64 = TemporalTilingConfig(tile_size_in_frames=64, tile_overlap_in_frames=24)
    spatial_128 = SpatialTilingConfig(tile_size_in_pixels=128, tile_overlap_in_pixels=64)
    runs = {
        "frames_80": (inputs["latent"], TilingConfig(temporal_config=frames_80)),
        "frames_64": (inputs["latent"], TilingConfig(temporal_config=frames_64)),
        "spatial_128": (inputs["wide_latent"], TilingConfig(spatial_config=spatial_128, temporal_config=frames_80)),
    }
    return {name: torch.cat(list(decoder.tiled_decode(latent, tiling)), dim=2)
            for name, (latent, tiling) in runs.items()}  # fmt: skip


def audio_decode(root, inputs):
    """The audio decoder on normalised latents [B, C, T, mel], then the vocoder."""
    models = ledger(root)
    mel = models.audio_decoder()(inputs["latent"])
    return {"mel": mel, "waveform": models.vocoder()(mel)}


def schedules(root, inputs):
    """The official sigma schedules: distilled stage 1 and 2 (constants) and the guided stage 1 (LTX2Scheduler with no
    latent, as TI2VidTwoStagesPipeline calls it) for the LTX-2 (40) and LTX-2.3 (30) step counts."""
    from ltx_core.components.schedulers import LTX2Scheduler
    from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

    return {
        "distilled_stage_1": torch.tensor(DISTILLED_SIGMA_VALUES, dtype=torch.float64),
        "distilled_stage_2": torch.tensor(STAGE_2_DISTILLED_SIGMA_VALUES, dtype=torch.float64),
        "guided_40": LTX2Scheduler().execute(steps=40).double(),
        "guided_30": LTX2Scheduler().execute(steps=30).double(),
    }


class RecordingNoiser:
    """ltx-core's GaussianNoiser, in float32, keeping every noise tensor it draws (in its token layout, in drawing
    order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio) so that the test can inject the same noise."""

    def __init__(self, seed: int):
        from ltx_core.components.noisers import GaussianNoiser

        self.noiser = GaussianNoiser(torch.Generator().manual_seed(seed))
        self.drawn: list[torch.Tensor] = []

    def __call__(self, latent_state, noise_scale: float = 1.0):
        noise = torch.randn(*latent_state.latent.shape, dtype=latent_state.latent.dtype, generator=self.noiser.generator)
        self.drawn.append(noise)
        scaled_mask = latent_state.denoise_mask * noise_scale
        latent = noise * scaled_mask + latent_state.latent * (1 - scaled_mask)
        return replace(latent_state, latent=latent.to(latent_state.latent.dtype))


@contextmanager
def v1_2_cross_attention_timesteps():
    """ltx-core v1.2.0's audio-video cross-attention timesteps (Lightricks/LTX-2 400fd31, transformer_args.py
    `_prepare_cross_attention_timestep`) on 1.0.0's transformer: the scale and shift from the modality's own
    per-token timesteps; the gate, as in 1.0.0, from the other modality's sigma (1.0.0 takes both from that sigma)."""
    from ltx_core.model.transformer.transformer_args import MultiModalTransformerArgsPreprocessor as Preprocessor

    original = Preprocessor.prepare

    def prepare(self, modality, cross_modality=None):
        args = original(self, modality, cross_modality)
        if cross_modality is None:
            return args
        multiplier = self.simple_preprocessor.timestep_scale_multiplier
        scale_shift, _ = self.cross_scale_shift_adaln((modality.timesteps * multiplier).flatten(),
                                                      hidden_dtype=modality.latent.dtype)  # fmt: skip
        return replace(args, cross_scale_shift_timestep=scale_shift.view(args.x.shape[0], -1, scale_shift.shape[-1]))

    Preprocessor.prepare = prepare
    try:
        yield
    finally:
        Preprocessor.prepare = original


@contextmanager
def v1_2_frozen_sigma():
    """ltx-pipelines v1.2.0's frozen modality (400fd31 utils/helpers.py `modality_from_latent_state`, since commit
    2362161) on 1.0.0: a state that is never denoised (audio-to-video's held audio: denoise mask 0 everywhere) has
    sigma 0, for its prompt AdaLN and the other modality's cross-attention gate; 1.0.0 gives it the step's sigma."""
    import ltx_pipelines.utils.helpers as helpers

    original = helpers.modality_from_latent_state

    def modality_from_latent_state(state, context, sigma, enabled=True):
        if not state.denoise_mask.any():
            sigma = torch.zeros_like(sigma)
        return original(state, context, sigma, enabled)

    helpers.modality_from_latent_state = modality_from_latent_state
    try:
        yield
    finally:
        helpers.modality_from_latent_state = original


def two_stage(root, guided: bool, steps: int = 0, stg_block: int = 0, negative_prompt: str = "", images=None,
              last=None, soundtrack=None, prompt="a cat over the ocean", seed=10, height=64, width=128, frames=17,
              fps=25.0):
    """DistilledPipeline.__call__ (guided False) or TI2VidTwoStagesPipeline.__call__ (guided True: `steps` stage-1
    steps on LTX2Scheduler's schedule with LTX_2_PARAMS' guidance, STG on `stg_block`; stage 2 with the distilled
    LoRA) of ltx-pipelines 1.0.0, step for step, in float32 instead of their hard-coded bf16 (so that the comparison
    measures implementation differences, not bf16 rounding), with the noise recorded. Outputs the stage-1 and final
    latents (normalised), the decoded frames and the waveforms of both the final and the stage-1 audio. `images`:
    first-frame pixels [1, 3, 1, H, W] in [-1, 1] at the stage-1 and the full size ({"stage_1": .., "stage_2": ..}),
    encoded by the official encoder and conditioned on as ltx-pipelines does (`VideoConditionByLatentIndex` at latent
    frame 0, strength 1); their latents are output too. `last`: the same for an image at the last frame, which
    `combined_image_conditionings` appends as a keyframe (`VideoConditionByKeyframeIndex` at frame `frames - 1`,
    strength 1). `soundtrack` (guided only): audio-to-video as
    A2VidPipelineTwoStage.__call__ runs it, on a waveform [1, 2, samples] at the audio VAE's 16 kHz (so that neither
    side resamples): encoded (`vae_encode_audio`, cut to the clip's latent frames), held fixed in both stages
    (`denoise_video_only`) with the default audio guider; its mel spectrogram and latents are output too."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams, create_multimodal_guider_factory
    from ltx_core.components.schedulers import LTX2Scheduler
    from ltx_core.conditioning import VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
    from ltx_core.loader import LoraPathStrengthAndSDOps
    from ltx_core.loader.sd_ops import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.model.audio_vae import AudioProcessor, decode_audio, encode_audio
    from ltx_core.model.upsampler import upsample_video
    from ltx_core.model.video_vae import TilingConfig, decode_video
    from ltx_core.types import Audio, AudioLatentShape, VideoPixelShape
    from ltx_pipelines.utils import euler_denoising_loop
    from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES, LTX_2_PARAMS, STAGE_2_DISTILLED_SIGMA_VALUES
    from ltx_pipelines.utils.helpers import (
        denoise_audio_video,
        denoise_video_only,
        encode_prompts,
        multi_modal_guider_denoising_func,
        multi_modal_guider_factory_denoising_func,
        simple_denoising_func,
    )
    from ltx_pipelines.utils.types import PipelineComponents

    models = ledger(root, dev=guided)
    device = torch.device("cpu")
    components = PipelineComponents(dtype=DTYPE, device=device)
    noiser, stepper = RecordingNoiser(seed), EulerDiffusionStep()
    contexts = encode_prompts([prompt, negative_prompt] if guided else [prompt], models)
    positive = contexts[0]
    transformer, video_encoder = models.transformer(), models.video_encoder()
    image_latents = {stage: video_encoder(pixels) for stage, pixels in (images or {}).items()}
    last_latents = {stage: video_encoder(pixels) for stage, pixels in (last or {}).items()}

    def conditionings(stage):
        items = []
        if stage in image_latents:
            items.append(VideoConditionByLatentIndex(latent=image_latents[stage], strength=1.0, latent_idx=0))
        if stage in last_latents:
            items.append(VideoConditionByKeyframeIndex(keyframes=last_latents[stage], frame_idx=frames - 1, strength=1.0))
        return items

    def loop_with(denoise):
        def loop(sigmas, video_state, audio_state, stepper):
            return euler_denoising_loop(sigmas=sigmas, video_state=video_state, audio_state=audio_state,
                                        stepper=stepper, denoise_fn=denoise)  # fmt: skip

        return loop

    def plain(model):
        return loop_with(simple_denoising_func(video_context=positive.video_encoding,
                                               audio_context=positive.audio_encoding, transformer=model))  # fmt: skip

    held = None
    if soundtrack is not None:
        audio_encoder = models.audio_encoder()
        sound = Audio(waveform=soundtrack, sampling_rate=audio_encoder.sample_rate)
        mel = AudioProcessor(target_sample_rate=audio_encoder.sample_rate, mel_bins=audio_encoder.mel_bins,
                             mel_hop_length=audio_encoder.mel_hop_length,
                             n_fft=audio_encoder.n_fft).waveform_to_mel(sound)  # fmt: skip
        held = encode_audio(sound, audio_encoder)[:, :, : AudioLatentShape.from_duration(1, frames / fps).frames]

    def denoise(**arguments):
        """denoise_audio_video, or with a soundtrack denoise_video_only (the audio's state: `held`)."""
        if held is None:
            return denoise_audio_video(**arguments)
        arguments.pop("initial_audio_latent", None)
        return denoise_video_only(**arguments, initial_audio_latent=held), None

    if guided and held is not None:  # a2vid_two_stage.py: the video guider, and an audio guider's defaults
        video_params = replace(LTX_2_PARAMS.video_guider_params, stg_blocks=[stg_block])
        stage_1_loop = loop_with(multi_modal_guider_denoising_func(
            video_guider=MultiModalGuider(params=video_params, negative_context=contexts[1].video_encoding),
            audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
            v_context=positive.video_encoding, a_context=positive.audio_encoding, transformer=transformer,
        ))  # fmt: skip
        sigmas_1 = LTX2Scheduler().execute(steps=steps).to(torch.float32)
    elif guided:
        video_params = replace(LTX_2_PARAMS.video_guider_params, stg_blocks=[stg_block])
        audio_params = replace(LTX_2_PARAMS.audio_guider_params, stg_blocks=[stg_block])
        stage_1_loop = loop_with(multi_modal_guider_factory_denoising_func(
            video_guider_factory=create_multimodal_guider_factory(params=video_params,
                                                                  negative_context=contexts[1].video_encoding),
            audio_guider_factory=create_multimodal_guider_factory(params=audio_params,
                                                                  negative_context=contexts[1].audio_encoding),
            v_context=positive.video_encoding, a_context=positive.audio_encoding, transformer=transformer,
        ))  # fmt: skip
        sigmas_1 = LTX2Scheduler().execute(steps=steps).to(torch.float32)
    else:
        stage_1_loop, sigmas_1 = plain(transformer), torch.tensor(DISTILLED_SIGMA_VALUES)

    shape_1 = VideoPixelShape(batch=1, frames=frames, width=width // 2, height=height // 2, fps=fps)
    video_1, audio_1 = denoise(
        output_shape=shape_1, conditionings=conditionings("stage_1"), noiser=noiser, sigmas=sigmas_1, stepper=stepper,
        denoising_loop_fn=stage_1_loop, components=components, dtype=DTYPE, device=device,
    )  # fmt: skip
    upscaled = upsample_video(latent=video_1.latent[:1], video_encoder=video_encoder,
                              upsampler=models.spatial_upsampler())  # fmt: skip
    if guided:
        (lora,) = (root / "loras").glob("*.safetensors")
        stage_2_models = models.with_additional_loras((LoraPathStrengthAndSDOps(str(lora), 1.0,
                                                                                LTXV_LORA_COMFY_RENAMING_MAP),))  # fmt: skip
        # ltx-core fuses the LoRA into the weights in the checkpoint's dtype (bf16), whatever the ledger's dtype
        transformer = stage_2_models.transformer().to(DTYPE)
    sigmas_2 = torch.tensor(STAGE_2_DISTILLED_SIGMA_VALUES)
    shape_2 = VideoPixelShape(batch=1, frames=frames, width=width, height=height, fps=fps)
    video_2, audio_2 = denoise(
        output_shape=shape_2, conditionings=conditionings("stage_2"), noiser=noiser, sigmas=sigmas_2, stepper=stepper,
        denoising_loop_fn=plain(transformer), components=components, dtype=DTYPE, device=device,
        noise_scale=sigmas_2[0], initial_video_latent=upscaled, initial_audio_latent=audio_1 and audio_1.latent,
    )  # fmt: skip
    # ltx-pipelines 1.0.0's CLI decodes with TilingConfig.default() (512 px / 64 frames): one tile at these sizes.
    tiling = TilingConfig.default()
    frames_out = torch.cat(list(decode_video(video_2.latent, models.video_decoder(), tiling, None)))
    outputs = {f"noise_{index}": noise for index, noise in enumerate(noiser.drawn)}
    outputs.update({f"image_latent_{stage}": latent for stage, latent in image_latents.items()})
    outputs.update({f"last_latent_{stage}": latent for stage, latent in last_latents.items()})
    if held is not None:  # the output's audio is the input itself
        outputs.update(mel=mel, audio_latent=held, stage_1_video=video_1.latent, upsampled=upscaled, video=video_2.latent)
        return outputs
    audio_decoder, vocoder = models.audio_decoder(), models.vocoder()
    outputs.update(
        video_context=positive.video_encoding, audio_context=positive.audio_encoding, stage_1_video=video_1.latent,
        stage_1_audio=audio_1.latent, upsampled=upscaled, video=video_2.latent, audio=audio_2.latent,
        frames=frames_out, waveform=decode_audio(audio_2.latent, audio_decoder, vocoder).waveform,
        stage_1_waveform=decode_audio(audio_1.latent, audio_decoder, vocoder).waveform,
    )  # fmt: skip
    return outputs


def fast(root, inputs):
    return two_stage(root, guided=False)


def image_to_video(root, inputs):
    """DistilledPipeline with a first-frame image, as in 1.0.0."""
    return two_stage(root, guided=False, images=inputs)


def image_to_video_v1_2(root, inputs):
    """The same with v1.2.0's cross-attention timesteps."""
    with v1_2_cross_attention_timesteps():
        return two_stage(root, guided=False, images=inputs)


def first_and_last(inputs):
    return {stage: inputs[stage] for stage in ("stage_1", "stage_2")}, {
        stage: inputs[f"last_{stage}"] for stage in ("stage_1", "stage_2")}


@contextmanager
def v1_2_keyframe_positions():
    """ltx-core v1.2.0's `VideoConditionByKeyframeIndex` (Lightricks/LTX-2 400fd31, keyframe_cond.py): a keyframe of
    one image spans [frame, frame + 1) in time, not the 8 frames of a latent frame as in 1.0.0. Narrowed before the
    frame offset is added, which is the same."""
    from ltx_core.conditioning.types import keyframe_cond

    original = keyframe_cond.get_pixel_coords

    def narrowed(latent_coords, scale_factors, causal_fix=False):
        coords = original(latent_coords=latent_coords, scale_factors=scale_factors, causal_fix=causal_fix)
        coords[:, 0, ..., 1:] = coords[:, 0, ..., :1] + 1
        return coords

    keyframe_cond.get_pixel_coords = narrowed
    try:
        yield
    finally:
        keyframe_cond.get_pixel_coords = original


def keyframes(root, inputs):
    """DistilledPipeline with a first and a last frame (`combined_image_conditionings`), as in 1.0.0."""
    first, last = first_and_last(inputs)
    return two_stage(root, guided=False, images=first, last=last)


def keyframes_v1_2(root, inputs):
    """The same with v1.2.0's cross-attention timesteps and keyframe time span."""
    first, last = first_and_last(inputs)
    with v1_2_cross_attention_timesteps(), v1_2_keyframe_positions():
        return two_stage(root, guided=False, images=first, last=last)


PRO_STEPS, PRO_STG_BLOCK = 2, 1
"""The guided recipe end to end with 2 stage-1 steps instead of 40 (the schedule itself is compared separately) and
STG on block 1 (the tiny transformer has 2 blocks; the real block is 29)."""


def pro(root, inputs):
    negative_prompt = bytes(inputs["negative_prompt"].tolist()).decode()
    return two_stage(root, guided=True, steps=PRO_STEPS, stg_block=PRO_STG_BLOCK, negative_prompt=negative_prompt)


def a2v(root, inputs):
    """A2VidPipelineTwoStage (the guided recipe's settings as `pro`) on the input waveform."""
    negative_prompt = bytes(inputs["negative_prompt"].tolist()).decode()
    return two_stage(root, guided=True, steps=PRO_STEPS, stg_block=PRO_STG_BLOCK, negative_prompt=negative_prompt,
                     soundtrack=inputs["waveform"])


def a2v_v1_2(root, inputs):
    """The same with v1.2.0's cross-attention timesteps and frozen-modality sigma."""
    with v1_2_cross_attention_timesteps(), v1_2_frozen_sigma():
        return a2v(root, inputs)


TRANSFORMER_SIGMA = 0.7


def transformer(root, inputs, prompt="a cat over the ocean", height=64, width=128, frames=17, fps=25.0):
    """One transformer forward (the velocity model) on noised video and audio tokens at sigma 0.7: plain, and with
    the STG perturbation (video and audio self-attention skipped in block PRO_STG_BLOCK)."""
    from ltx_core.guidance.perturbations import (
        BatchedPerturbationConfig,
        Perturbation,
        PerturbationConfig,
        PerturbationType,
    )
    from ltx_core.types import VideoPixelShape
    from ltx_pipelines.utils.helpers import (
        encode_prompts,
        modality_from_latent_state,
        noise_audio_state,
        noise_video_state,
    )
    from ltx_pipelines.utils.types import PipelineComponents

    models = ledger(root)
    device = torch.device("cpu")
    components = PipelineComponents(dtype=DTYPE, device=device)
    noiser = RecordingNoiser(seed=3)
    (context,) = encode_prompts([prompt], models)
    shape = VideoPixelShape(batch=1, frames=frames, width=width, height=height, fps=fps)
    common = dict(noiser=noiser, conditionings=[], components=components, dtype=DTYPE, device=device)
    video_state, _ = noise_video_state(output_shape=shape, **common)
    audio_state, _ = noise_audio_state(output_shape=shape, **common)
    sigma = torch.tensor(TRANSFORMER_SIGMA)
    video = modality_from_latent_state(video_state, context.video_encoding, sigma)
    audio = modality_from_latent_state(audio_state, context.audio_encoding, sigma)
    model = models.transformer().velocity_model
    stg = PerturbationConfig([Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [PRO_STG_BLOCK]),
                              Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [PRO_STG_BLOCK])])  # fmt: skip
    plain_video, plain_audio = model(video, audio, BatchedPerturbationConfig([PerturbationConfig.empty()]))
    stg_video, stg_audio = model(video, audio, BatchedPerturbationConfig([stg]))
    return {"video_tokens": video.latent, "audio_tokens": audio.latent, "video_context": context.video_encoding,
            "audio_context": context.audio_encoding, "plain_video": plain_video, "plain_audio": plain_audio,
            "stg_video": stg_video, "stg_audio": stg_audio}  # fmt: skip


def text(root, inputs, prompt="a cat over the ocean"):
    """The text path: token ids and mask, Gemma's hidden states, the projected features, the connectors' outputs."""
    models = ledger(root)
    encoder = models.text_encoder()
    pairs = encoder.tokenizer.tokenize_with_weights(prompt)["gemma"]
    hidden_states, mask = encoder.encode(prompt)
    processor = models.gemma_embeddings_processor()
    video_features, _ = processor.feature_extractor(hidden_states, mask, "left")
    output = processor.process_hidden_states(hidden_states, mask)
    return {"input_ids": torch.tensor([[pair[0] for pair in pairs]]), "mask": mask,
            "hidden_states": torch.stack(hidden_states), "features": video_features,
            "video_context": output.video_encoding, "audio_context": output.audio_encoding}  # fmt: skip


TASKS = {task.__name__: task for task in (upsampler, vae_decode, tiled_decode, audio_decode, schedules, fast,
                                          image_to_video, image_to_video_v1_2, keyframes, keyframes_v1_2, pro, a2v,
                                          a2v_v1_2, transformer, text)}  # fmt: skip


def main() -> None:
    root, source, target, *tasks = sys.argv[1:]
    inputs = load_file(source)
    outputs = {}
    with torch.inference_mode():
        for task in tasks:
            mine = {key.split(".", 1)[1]: value.to(DTYPE) if value.is_floating_point() else value
                    for key, value in inputs.items() if key.startswith(task + ".")}  # fmt: skip
            outputs.update({f"{task}.{key}": value for key, value in TASKS[task](Path(root), mine).items()})
    save_file({key: value.contiguous() for key, value in outputs.items()}, target)


if __name__ == "__main__":
    main()
