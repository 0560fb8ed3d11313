"""Parity with Lightricks' official implementation (ltx-core / ltx-pipelines 1.0.0 from PyPI) on tiny random weights.

Both sides load the same files: tiny weights written by `build_tiny_official` in Lightricks' single-file format (bf16,
as Lightricks ships them). The official code runs in its own venv (tests/engine/parity/oracle.py; .venv-oracle is made by
scripts/install.sh --test, LTX_ORACLE_PYTHON overrides it) and tensors cross through safetensors files, so this
process never imports ltx-core. Both sides compute in float32 on the CPU: the tolerances below only have to absorb
float32 summation-order differences between two implementations of the same layers (measured maxima in
docs/fidelity.md), not bf16 rounding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ltx_runtime import decode, official, recipes, speed
from ltx_runtime.catalog import Recipe, get_model
from ltx_runtime.geometry import plan_generation
from ltx_runtime.recipes import CROSS_TIMESTEP, fast, guided
from ltx_runtime.recipes.guided import NEGATIVE_PROMPT
from ltx_runtime.request import GenerationRequest
from ltx_runtime.weights import load_components

pytestmark = pytest.mark.slow  # the official code in its own venv, models built twice per architecture (2-3 min)

ROOT = Path(__file__).resolve().parents[2]
ORACLE = Path(os.environ.get("LTX_ORACLE_PYTHON", ROOT / ".venv-oracle" / "bin" / "python"))
FLOAT32_TOLERANCE = 1e-4
"""Absolute, on outputs of order 1: float32 with different kernel orders differs by ~1e-6 per op; 1e-4 leaves room
for a few dozen layers and still fails on any wrong weight, key or formula."""


ARCHITECTURES = ("ltx-2", "ltx-2.3")
ORACLE_TASKS = {
    "ltx-2": ["upsampler", "vae_decode", "tiled_decode", "audio_decode", "schedules", "text", "transformer", "fast",
              "image_to_video", "image_to_video_v1_2", "keyframes", "keyframes_v1_2", "pro", "a2v", "a2v_v1_2"],  # fmt: skip
    # no Fast recipe runs LTX-2.3; its video VAE and upsampler are the same tiny layout as LTX-2's
    "ltx-2.3": ["audio_decode", "text", "transformer", "pro", "a2v", "a2v_v1_2"],
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("official")
    return {architecture: official.build_tiny_official(folder / architecture, architecture) for architecture in ARCHITECTURES}


@pytest.fixture(scope="module")
def architecture(request) -> str:
    """Set per test with `on(...)`; the fixtures below are built once per architecture."""
    return request.param


def on(*architectures: str):
    return pytest.mark.parametrize("architecture", architectures, indirect=True)


@pytest.fixture(scope="module")
def official_root(roots, architecture) -> Path:
    return roots[architecture]


@pytest.fixture(scope="module")
def ours(official_root):
    pipeline, upsampler, _ = official.load_official(official_root, dev=False, dtype=torch.float32)
    return pipeline, upsampler


def _random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


_SECONDS = np.arange(round(17 / 25 * 16000)) / 16000
A2V_WAVEFORM = torch.tensor(np.stack([0.5 * np.sin(2 * np.pi * 440 * _SECONDS),
                                      0.3 * np.sin(2 * np.pi * (200 + 900 * _SECONDS) * _SECONDS)]),
                            dtype=torch.float32)  # fmt: skip
"""The audio-to-video input: 17 frames at 25 fps of stereo at the audio VAE's 16 kHz (no resampling on either side)."""
FIRST_FRAME = {"stage_1": _random(1, 3, 1, 32, 64, seed=5).clamp(-1, 1),
               "stage_2": _random(1, 3, 1, 64, 128, seed=6).clamp(-1, 1)}  # fmt: skip
LAST_FRAME = {"last_stage_1": _random(1, 3, 1, 32, 64, seed=9).clamp(-1, 1),
              "last_stage_2": _random(1, 3, 1, 64, 128, seed=10).clamp(-1, 1)}  # fmt: skip
INPUTS = {
    "upsampler.latent": _random(1, 128, 3, 2, 4, seed=1),
    "vae_decode.latent": _random(1, 128, 3, 2, 4, seed=2),
    "tiled_decode.latent": _random(1, 128, 24, 2, 3, seed=7),
    "tiled_decode.wide_latent": _random(1, 128, 12, 4, 6, seed=8),
    "audio_decode.latent": _random(1, 8, 17, 16, seed=3),
    "pro.negative_prompt": torch.tensor(list(NEGATIVE_PROMPT.encode()), dtype=torch.uint8),
    **{f"{task}.{name}": value for task in ("a2v", "a2v_v1_2") for name, value in (
        ("negative_prompt", torch.tensor(list(NEGATIVE_PROMPT.encode()), dtype=torch.uint8)),
        ("waveform", A2V_WAVEFORM.unsqueeze(0).clone()))},  # fmt: skip
    **{f"{task}.{stage}": pixels.clone() for task in ("image_to_video", "image_to_video_v1_2")
       for stage, pixels in FIRST_FRAME.items()},  # fmt: skip
    **{f"{task}.{stage}": pixels.clone() for task in ("keyframes", "keyframes_v1_2")
       for stage, pixels in {**FIRST_FRAME, **LAST_FRAME}.items()},  # fmt: skip
}
"""Each task's inputs: 64x128 pixels and 17 frames (latents 3x2x4), 17 audio latent frames (0.68 s); the tiled decode
185 frames of 64x96 (latents 24x2x3: three temporal tiles of 80 frames) and 89 frames of 128x192 (latents 12x4x6);
the first frame and the last (random pixels at the stage-1 and the full size); the recipes run at 128x64, 17 frames,
25 fps with the prompt of tests/engine/parity/oracle.py."""
PROMPT = "a cat over the ocean"
PRO_STEPS, PRO_STG_BLOCK = 2, 1
"""As tests/engine/parity/oracle.py: the guided recipe with 2 stage-1 steps (the 40-step schedule is compared on its own) and
STG on block 1 of the 2-block tiny transformer (the real block, 29, does not exist in it)."""


@pytest.fixture(scope="module")
def theirs(official_root, architecture, tmp_path_factory) -> dict[str, dict[str, torch.Tensor]]:
    """Every oracle task's outputs for this architecture, from one run of the official code: {task: {name: tensor}}."""
    if not ORACLE.is_file():
        pytest.fail(f"no oracle venv at {ORACLE}: run scripts/install.sh --test (it creates .venv-oracle)")
    folder = tmp_path_factory.mktemp("oracle")
    source, target = folder / "in.safetensors", folder / "out.safetensors"
    save_file(INPUTS, str(source))
    tasks = ORACLE_TASKS[architecture]
    result = subprocess.run([str(ORACLE), str(ROOT / "tests" / "engine" / "parity" / "oracle.py"), str(official_root),
                             str(source), str(target), *tasks], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outputs: dict[str, dict[str, torch.Tensor]] = {task: {} for task in tasks}
    for key, value in load_file(str(target)).items():
        task, name = key.split(".", 1)
        outputs[task][name] = value
    return outputs


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    difference = (a.float() - b.float()).abs().max().item()
    print(f"max |ours - official| = {difference:.3g}")  # the figures in docs/fidelity.md (pytest -s)
    return difference


@on("ltx-2")
def test_the_latent_upsampler_matches(architecture, ours, theirs):
    with torch.inference_mode():
        mine = ours[1](INPUTS["upsampler.latent"])
    assert mine.shape == (1, 128, 3, 4, 8)
    assert max_difference(mine, theirs["upsampler"]["latent"]) < FLOAT32_TOLERANCE


@on("ltx-2")
def test_the_video_decoder_matches(architecture, ours, theirs):
    """Official: normalised latents in, the decoder un-normalises; ours: the pipeline un-normalises, then the VAE."""
    pipeline, latent, theirs = ours[0], INPUTS["vae_decode.latent"], theirs["vae_decode"]
    vae = pipeline.vae
    raw = latent * vae.latents_std.view(1, -1, 1, 1, 1) + vae.latents_mean.view(1, -1, 1, 1, 1)
    with torch.inference_mode():
        decoded = vae.decode(raw, return_dict=False)[0]
    assert decoded.shape == (1, 3, 17, 64, 128)
    assert max_difference(decoded, theirs["decoded"]) < FLOAT32_TOLERANCE
    frames = (((decoded + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    # uint8 truncation can flip a value sitting on an integer boundary by one step, nothing more
    assert max_difference(frames, theirs["frames"]) <= 1


def raw_video_latents(vae, latent: torch.Tensor) -> torch.Tensor:
    """ltx-core's normalised latents as the diffusers VAE takes them (the pipeline un-normalises before decoding)."""
    return latent * vae.latents_std.view(1, -1, 1, 1, 1) + vae.latents_mean.view(1, -1, 1, 1, 1)


@on("ltx-2")
@pytest.mark.parametrize("tile_frames", [80, 64])
def test_a_clip_of_several_temporal_tiles_decodes_as_officially(architecture, ours, theirs, tile_frames):
    """185 frames in three (80-frame tiles, v1.2.0) or five (64, 1.0.0's default) temporal tiles overlapping by 24
    frames: the engine's streamed decode against ltx-core's `tiled_decode`. Until #26 every later tile was one frame
    late (it dropped its last frame instead of its first) and the tiles were diffusers', not ltx-core's."""
    vae = ours[0].vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = tile_frames, tile_frames - 24
    with torch.inference_mode():
        raw = raw_video_latents(vae, INPUTS["tiled_decode.latent"])
        decoded = torch.cat(list(decode.decode_video_chunks(vae, raw)), 2)
    assert decoded.shape == (1, 3, 185, 64, 96)
    assert max_difference(decoded, theirs["tiled_decode"][f"frames_{tile_frames}"]) < FLOAT32_TOLERANCE


@on("ltx-2")
def test_spatial_tiles_are_placed_and_blended_differently_from_the_official_ones(architecture, ours, theirs):
    """A known divergence (docs/fidelity.md): 89 frames of 128x192 px in spatial tiles of 128 px along the long side
    overlapping by 64 (ltx-core's sizes, set by `decode.tiling`) with 80-frame temporal tiles. Inside each temporal
    tile the engine tiles spatially with diffusers' `tiled_decode`: a tile at every stride (4 rows of 96 px here,
    ltx-core 2), each blended over the overlap with a ramp from 0 and cropped to the stride, where ltx-core blends
    its tiles with trapezoid masks. Asserted to differ, so that this test is turned into a parity test the day the
    engine tiles spatially as ltx-core does."""
    vae = ours[0].vae
    vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = 80, 56
    with torch.inference_mode(), decode.tiling(vae, 128, 192, decode.DecodeTiles(128)):
        raw = raw_video_latents(vae, INPUTS["tiled_decode.wide_latent"])
        decoded = torch.cat(list(decode.decode_video_chunks(vae, raw)), 2)
    official = theirs["tiled_decode"]["spatial_128"]
    to_uint8 = lambda video: (((video + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)  # noqa: E731
    steps = (to_uint8(decoded).int() - to_uint8(official).int()).abs().float()
    print(f"uint8: mean {steps.mean().item():.3g} steps, {(steps > 0).float().mean().item():.3g} of values differ")
    assert max_difference(decoded, official) > 0.1


@on(*ARCHITECTURES)
def test_the_audio_decoder_and_vocoder_match(architecture, ours, theirs):
    """LTX-2: the 24 kHz vocoder; LTX-2.3: the vocoder with bandwidth extension to 48 kHz (in float32 on both sides,
    as officially)."""
    pipeline, latent, theirs = ours[0], INPUTS["audio_decode.latent"], theirs["audio_decode"]
    audio_vae = pipeline.audio_vae
    patched = latent.permute(0, 2, 1, 3).flatten(2)  # b c t f -> b t (c f), as both implementations normalise
    raw = (patched * audio_vae.latents_std + audio_vae.latents_mean).unflatten(2, (8, 16)).permute(0, 2, 1, 3)
    with torch.inference_mode():
        mel = audio_vae.decode(raw, return_dict=False)[0]
        waveform = pipeline.vocoder(mel)
    assert max_difference(mel, theirs["mel"]) < FLOAT32_TOLERANCE
    samples_per_mel_frame = pipeline.vocoder.config.output_sampling_rate // 100  # 100 mel frames per second
    assert waveform.shape[-1] == (1 + 16 * 4) * samples_per_mel_frame  # causal: 17 latent frames -> 65 mel frames
    assert max_difference(waveform, theirs["waveform"]) < FLOAT32_TOLERANCE


@on("ltx-2")
def test_the_fast_recipe_uses_the_official_distilled_sigmas(architecture, theirs):
    """Fast runs diffusers' published constants unshifted (recipes/fast.py); with the final 0 the scheduler appends,
    they must be ltx-pipelines' own."""
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

    official_schedules = theirs["schedules"]
    assert max_difference(torch.tensor([*DISTILLED_SIGMA_VALUES, 0.0], dtype=torch.float64),
                          official_schedules["distilled_stage_1"]) < 1e-7  # fmt: skip
    assert max_difference(torch.tensor([*STAGE_2_DISTILLED_SIGMA_VALUES, 0.0], dtype=torch.float64),
                          official_schedules["distilled_stage_2"]) < 1e-7  # fmt: skip


@on("ltx-2")
@pytest.mark.parametrize("steps", [40, 30])
def test_the_guided_recipes_use_the_official_schedule(architecture, theirs, steps):
    """TI2VidTwoStagesPipeline's stage-1 sigmas (LTX2Scheduler without a latent: the 2.05 shift at every size,
    stretched to 0.1) against the recipe's (`guided.stage_1_sigmas`, plus the final 0 the scheduler appends) for the
    LTX-2 (40) and LTX-2.3 (30) step counts. float32 on the official side (LTX2Scheduler computes in float32): 1e-6."""
    ours = torch.tensor([*guided.stage_1_sigmas(steps), 0.0], dtype=torch.float64)
    assert max_difference(ours, theirs["schedules"][f"guided_{steps}"]) < 1e-6


@on(*ARCHITECTURES)
def test_the_text_path_matches(ours, theirs):
    """Tokenizer (left padding to 1024, <bos>) -> Gemma's hidden states -> projection -> connectors with their 128
    learnable registers (LTX-2.3: one projection per modality), as the recipes encode a prompt."""
    pipeline, official_run = ours[0], theirs["text"]
    with torch.inference_mode():
        embeds, mask, _, _ = pipeline.encode_prompt(PROMPT, do_classifier_free_guidance=False, device="cpu")
        video, audio, _ = pipeline.connectors(embeds, mask, padding_side="left")
    assert int(mask.sum()) == int(official_run["mask"].sum())
    assert max_difference(video, official_run["video_context"]) < FLOAT32_TOLERANCE
    assert max_difference(audio, official_run["audio_context"]) < FLOAT32_TOLERANCE


@on(*ARCHITECTURES)
def test_one_transformer_forward_matches_plain_and_with_stg(architecture, ours, theirs):
    """The velocity of video and audio tokens at sigma 0.7 (the contexts the official connectors produced), with no
    perturbation and with STG (video and audio self-attention skipped in one block), called as diffusers' LTX-2
    pipeline calls the transformer (timestep = 1000 sigma; the recipes' cross-attention timesteps, which in
    text-to-video equal 1.0.0's)."""
    transformer, official_run = ours[0].transformer, theirs["transformer"]
    frames, height, width, audio_frames = 3, 2, 4, official_run["audio_tokens"].shape[1]
    timestep = torch.tensor([0.7 * 1000.0])
    mask = torch.ones(1, official_run["video_context"].shape[1])
    with torch.inference_mode(), recipes.cross_attention_gates(transformer):
        video_coords = transformer.rope.prepare_video_coords(1, frames, height, width, torch.device("cpu"), fps=25.0)
        audio_coords = transformer.audio_rope.prepare_audio_coords(1, audio_frames, torch.device("cpu"))
        for name, blocks in (("plain", None), ("stg", [PRO_STG_BLOCK])):
            video, audio = transformer(
                hidden_states=official_run["video_tokens"], audio_hidden_states=official_run["audio_tokens"],
                encoder_hidden_states=official_run["video_context"],
                audio_encoder_hidden_states=official_run["audio_context"], timestep=timestep, sigma=timestep,
                encoder_attention_mask=mask, audio_encoder_attention_mask=mask, num_frames=frames, height=height,
                width=width, fps=25.0, audio_num_frames=audio_frames, video_coords=video_coords,
                audio_coords=audio_coords, isolate_modalities=False, spatio_temporal_guidance_blocks=blocks,
                perturbation_mask=None, use_cross_timestep=CROSS_TIMESTEP, return_dict=False,
            )  # fmt: skip
            assert max_difference(video, official_run[f"{name}_video"]) < FLOAT32_TOLERANCE
            assert max_difference(audio, official_run[f"{name}_audio"]) < FLOAT32_TOLERANCE
    # and the perturbation does something (it would not on a config with perturbed_attn=False)
    assert max_difference(official_run["stg_video"], official_run["plain_video"]) > 0.01


# --- the recipes end to end, from the same noise -----------------------------------------------------------------------


def inject_noise(monkeypatch, drawn: list[torch.Tensor]) -> list[torch.Tensor]:
    """Make diffusers' LTX-2 pipelines (text- and image-to-video, keyframes) draw, in order, the noise the official run drew. Both draw in the same order
    (stage-1 video, stage-1 audio, stage-2 video, stage-2 audio); ltx-core keeps noise as tokens [B, T, C], diffusers
    asks for [B, C, F, H, W] / [B, C, L, M] before packing them into the same token order, or for tokens directly."""
    import diffusers.pipelines.ltx2.pipeline_ltx2 as text_to_video
    import diffusers.pipelines.ltx2.pipeline_ltx2_condition as keyframes
    import diffusers.pipelines.ltx2.pipeline_ltx2_image2video as image_to_video

    queue = list(drawn)

    def from_queue(shape, generator=None, device=None, dtype=None, layout=None):
        tokens = queue.pop(0)
        if len(shape) == 5:
            batch, channels, frames, height, width = shape
            tokens = tokens.reshape(batch, frames, height, width, channels).permute(0, 4, 1, 2, 3)
        elif len(shape) == 4:
            batch, channels, length, mel = shape
            tokens = tokens.reshape(batch, length, channels, mel).permute(0, 2, 1, 3)
        assert tokens.shape == tuple(shape)
        return tokens.contiguous().to(dtype)

    for module in (text_to_video, image_to_video, keyframes):
        monkeypatch.setattr(module, "randn_tensor", from_queue)
    return queue


def run_recipe(monkeypatch: pytest.MonkeyPatch, official_root, theirs, model_id: str, first_frame: bool = False,
               dtype: torch.dtype = torch.float32, last_frame: bool = False,
               soundtrack: np.ndarray | None = None):  # fmt: skip
    """Our recipe for `model_id` on the official files, from the official run's noise; (components, plan, output).
    `first_frame`: image-to-video, with the first frame the official encoder encoded at each stage's size (the
    recipes' own encoding is bypassed: this compares the denoising). `last_frame` (with `first_frame`): keyframes,
    the last frame too, which diffusers' keyframe pipeline encodes (bypassed the same way). `soundtrack`:
    audio-to-video (guided recipes)."""
    spec = get_model(model_id)
    components = load_components(official_root, spec, dtype)
    speed.apply(components, speed.SpeedOptions.plain(), torch.device("cpu"))  # as the engine: VAE tiles, no cache
    queue = inject_noise(monkeypatch, [theirs[f"noise_{index}"] for index in range(4)])
    plan = plan_generation(128, 64, 17 / 25, 25, spec.audio_sample_rate)
    images = ()
    if first_frame:
        vae = components.pipeline.vae
        encoded = {(plan.stage1_width, plan.stage1_height): theirs["image_latent_stage_1"],
                   (plan.gen_width, plan.gen_height): theirs["image_latent_stage_2"]}  # fmt: skip
        monkeypatch.setattr(recipes, "encode_first_frame",
                            lambda pipe, pixels, width, height: raw_video_latents(vae, encoded[width, height]))  # fmt: skip
        images = (recipes.ConditioningImage(np.zeros((plan.gen_height, plan.gen_width, 3), np.uint8), 0),)  # stands for the encoded frame
    if last_frame:
        import diffusers.pipelines.ltx2.pipeline_ltx2_condition as keyframes

        # the keyframe pipeline encodes each stage's images in order: the first frame, then the last
        encoded = [raw_video_latents(vae, theirs[name]) for name in
                   ("image_latent_stage_1", "last_latent_stage_1", "image_latent_stage_2", "last_latent_stage_2")]  # fmt: skip
        monkeypatch.setattr(keyframes, "retrieve_latents", lambda *args, **kwargs: encoded.pop(0))
        images += (recipes.ConditioningImage(images[0].pixels, plan.frames - 1),)
    recipe = fast.run if spec.recipe == Recipe.FAST else guided.run
    request = GenerationRequest(spec.id, PROMPT, plan.width, plan.height, plan.duration, plan.fps, audio=True)
    given_audio = {} if soundtrack is None else {"soundtrack": soundtrack}
    output = recipe(components, spec, plan, request, torch.Generator().manual_seed(0), lambda done, total: None,
                    images=images, **given_audio)  # fmt: skip
    assert queue == [], "every official noise tensor was used"
    return components, plan, output


def normalised(components, output) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's (denormalised) latents in ltx-core's normalised form: video [B, C, F, H, W], audio [B, C, T, mel]."""
    vae, audio_vae = components.pipeline.vae, components.pipeline.audio_vae
    video = (output.video_latents - vae.latents_mean.view(1, -1, 1, 1, 1)) / vae.latents_std.view(1, -1, 1, 1, 1)
    tokens = output.audio_latents.permute(0, 2, 1, 3).flatten(2)
    audio = ((tokens - audio_vae.latents_mean) / audio_vae.latents_std).unflatten(2, (8, 16)).permute(0, 2, 1, 3)
    return video, audio


def waveform(components, plan, output) -> torch.Tensor:
    return torch.from_numpy(decode.audio_waveform(components.pipeline.audio_vae, components.pipeline.vocoder,
                                                  output.audio_latents, plan)).T  # fmt: skip


def check_waveform(ours: torch.Tensor, official: torch.Tensor, tolerance: float = FLOAT32_TOLERANCE) -> None:
    """The official waveform (65 mel frames: the causal audio VAE's length) is ours up to where the engine pads the
    clip's last 30 ms with silence to the exact duration (geometry, not decoding)."""
    length = official.shape[1]
    assert max_difference(ours[:, :length], official) < tolerance
    assert ours[:, length:].abs().max() == 0


@pytest.fixture(scope="module")
def fast_run(architecture, official_root, theirs):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_recipe(monkeypatch, official_root, theirs["fast"], "ltx-runtime:tiny@1")


@on("ltx-2")
def test_the_fast_recipe_end_to_end_matches(fast_run, theirs):
    """DistilledPipeline: prompt -> 8 sigmas at half size -> x2 upsampler -> 3 sigmas -> latents and audio."""
    components, plan, output = fast_run
    video, audio = normalised(components, output)
    assert max_difference(video, theirs["fast"]["video"]) < FLOAT32_TOLERANCE
    assert max_difference(audio, theirs["fast"]["audio"]) < FLOAT32_TOLERANCE  # Fast keeps stage-2 audio
    check_waveform(waveform(components, plan, output), theirs["fast"]["waveform"])


@on("ltx-2")
def test_image_to_video_matches_both_official_releases(monkeypatch, architecture, official_root, theirs):
    """DistilledPipeline with a first frame (latent frame 0 replaced by the encoded image and kept clean, at both
    stages). The recipe follows v1.2.0's cross-attention timesteps (recipes.CROSS_TIMESTEP, cross_attention_gates):
    equal to ltx-core 1.0.0 running v1.2.0's rule (oracle `v1_2_cross_attention_timesteps`). With diffusers'
    use_cross_timestep=True (the other modality's sigma for scale, shift and gate) it is 1.0.0's rule, and equal to
    1.0.0 itself. The two rules differ on the clean first frame's tokens, and so does the result."""
    with monkeypatch.context() as patch:
        components, _, output = run_recipe(patch, official_root, theirs["image_to_video_v1_2"], "ltx-runtime:tiny@1",
                                           first_frame=True)  # fmt: skip
    v1_2_video, v1_2_audio = normalised(components, output)
    assert max_difference(v1_2_video, theirs["image_to_video_v1_2"]["video"]) < FLOAT32_TOLERANCE
    assert max_difference(v1_2_audio, theirs["image_to_video_v1_2"]["audio"]) < FLOAT32_TOLERANCE

    monkeypatch.setattr(fast, "CROSS_TIMESTEP", True)  # 1.0.0's rule
    components, _, output = run_recipe(monkeypatch, official_root, theirs["image_to_video"], "ltx-runtime:tiny@1",
                                       first_frame=True)  # fmt: skip
    video, audio = normalised(components, output)
    assert max_difference(video, theirs["image_to_video"]["video"]) < FLOAT32_TOLERANCE
    assert max_difference(audio, theirs["image_to_video"]["audio"]) < FLOAT32_TOLERANCE
    # what following v1.2.0 costs in parity with 1.0.0 (docs/fidelity.md)
    assert max_difference(v1_2_video, theirs["image_to_video"]["video"]) > 10 * FLOAT32_TOLERANCE
    print("audio:")
    max_difference(v1_2_audio, theirs["image_to_video"]["audio"])


@on("ltx-2")
def test_keyframes_match_both_official_releases(monkeypatch, architecture, official_root, theirs):
    """DistilledPipeline with a first and a last frame, as `combined_image_conditionings` builds them: the first
    replaces latent frame 0, the last is appended as a latent frame of clean tokens at frame 16, in both stages. The
    recipe follows v1.2.0 (cross-attention timesteps, and a one-image keyframe spanning [16, 17) / fps in time):
    equal to ltx-core 1.0.0 running v1.2.0's two rules. With 1.0.0's rules (use_cross_timestep=True, and the span of
    a latent frame, [16, 24) / fps) it is equal to 1.0.0 itself."""
    from diffusers import LTX2ConditionPipeline

    with monkeypatch.context() as patch:
        components, _, output = run_recipe(patch, official_root, theirs["keyframes_v1_2"], "ltx-runtime:tiny@1",
                                           first_frame=True, last_frame=True)  # fmt: skip
    v1_2_video, v1_2_audio = normalised(components, output)
    assert max_difference(v1_2_video, theirs["keyframes_v1_2"]["video"]) < FLOAT32_TOLERANCE
    assert max_difference(v1_2_audio, theirs["keyframes_v1_2"]["audio"]) < FLOAT32_TOLERANCE

    monkeypatch.setattr(fast, "CROSS_TIMESTEP", True)  # 1.0.0's rule
    eight_frames = LTX2ConditionPipeline._prepare_keyframe_coords  # diffusers narrows the span of one-frame keyframes only
    monkeypatch.setattr(LTX2ConditionPipeline, "_prepare_keyframe_coords",
                        lambda self, **kwargs: eight_frames(self, **{**kwargs, "num_pixel_frames": 8}))  # fmt: skip
    components, _, output = run_recipe(monkeypatch, official_root, theirs["keyframes"], "ltx-runtime:tiny@1",
                                       first_frame=True, last_frame=True)  # fmt: skip
    video, audio = normalised(components, output)
    assert max_difference(video, theirs["keyframes"]["video"]) < FLOAT32_TOLERANCE
    assert max_difference(audio, theirs["keyframes"]["audio"]) < FLOAT32_TOLERANCE
    # what following v1.2.0 costs in parity with 1.0.0 (docs/fidelity.md)
    assert max_difference(v1_2_video, theirs["keyframes"]["video"]) > 10 * FLOAT32_TOLERANCE
    print("audio:")
    max_difference(v1_2_audio, theirs["keyframes"]["audio"])


GUIDED_TOLERANCE = 1e-3
"""Guided stage 1: CFG 7 on audio (3 on video) plus STG and modality guidance multiply the difference of two float32
predictions, so float32 noise of ~1e-7 grows to ~1e-4 over two steps (6.1e-5 measured)."""
LORA_TOLERANCE = 5e-3
"""Stage 2 of the guided recipe: ltx-core fuses the distilled LoRA into the weights in the checkpoint's dtype (bf16,
relative rounding 4e-3), ours applies it unfused in float32; everything before the LoRA keeps FLOAT32_TOLERANCE."""


GUIDED_MODELS = {"ltx-2": "ltx-runtime:tiny-pro@1", "ltx-2.3": "ltx-runtime:tiny-ltx23@1"}
"""The Pro recipe on LTX-2 and the LTX-2.3 recipe on LTX-2.3: both are TI2VidTwoStagesPipeline."""


@on(*ARCHITECTURES)
def test_the_guided_recipe_end_to_end_matches(monkeypatch, architecture, official_root, theirs):
    """TI2VidTwoStagesPipeline: guided stage 1 (CFG 3 / 7, STG, modality 3, rescale 0.7 for video / audio), x2
    upsampler, stage 2 with the distilled LoRA. ltx-pipelines 1.0.0 decodes stage 2's audio; since v1.2.0 (63fd9a4)
    it keeps stage 1's, and so does the recipe: the audio is compared with the official stage-1 audio. The negative
    prompt is the recipe's (v1.2.0 text), given to both."""
    spec = get_model(GUIDED_MODELS[architecture])
    few_steps = replace(guided.PARAMS[spec.recipe], steps=PRO_STEPS, stg_block=PRO_STG_BLOCK)
    monkeypatch.setitem(guided.PARAMS, spec.recipe, few_steps)
    components, plan, output = run_recipe(monkeypatch, official_root, theirs["pro"], spec.id)
    video, audio = normalised(components, output)
    assert max_difference(video, theirs["pro"]["video"]) < LORA_TOLERANCE
    assert max_difference(audio, theirs["pro"]["stage_1_audio"]) < GUIDED_TOLERANCE
    check_waveform(waveform(components, plan, output), theirs["pro"]["stage_1_waveform"], GUIDED_TOLERANCE)


@on(*ARCHITECTURES)
def test_audio_to_video_end_to_end_matches_both_official_rules(monkeypatch, architecture, official_root, theirs):
    """A2VidPipelineTwoStage: the input's log-mel spectrogram (torch.stft and transformers' Slaney filter bank against
    torchaudio's MelSpectrogram in ltx-core's AudioProcessor), its audio-VAE encoding, and the video denoised by the
    guided stages around the audio held fixed (official: `denoise_video_only`, the default audio guider). As in
    image-to-video, the clean tokens (here the audio's, at timestep 0) tell the cross-attention timestep rules apart,
    and v1.2.0 gives the held audio sigma 0 (1.0.0: the step's): the recipe's (v1.2.0's rules) matches 1.0.0 running
    v1.2.0's rules, and with 1.0.0's rules it matches 1.0.0 itself."""
    spec = get_model(GUIDED_MODELS[architecture])
    components = load_components(official_root, spec, torch.float32)
    assert max_difference(recipes.log_mel(A2V_WAVEFORM, components.pipeline.audio_vae),
                          theirs["a2v"]["mel"]) < FLOAT32_TOLERANCE  # fmt: skip
    monkeypatch.setitem(guided.PARAMS, spec.recipe, replace(guided.PARAMS[spec.recipe], steps=PRO_STEPS,
                                                            stg_block=PRO_STG_BLOCK))  # fmt: skip
    videos = {}
    for task, v1_2 in (("a2v_v1_2", True), ("a2v", False)):
        with monkeypatch.context() as patch:
            patch.setattr(guided, "CROSS_TIMESTEP", CROSS_TIMESTEP if v1_2 else True)
            patch.setattr(recipes, "HELD_AUDIO_SIGMA_ZERO", v1_2)
            components, _, output = run_recipe(patch, official_root, theirs[task], spec.id,
                                               soundtrack=A2V_WAVEFORM.T.numpy())  # fmt: skip
        videos[task], audio = normalised(components, output)
        assert max_difference(audio, theirs[task]["audio_latent"]) < FLOAT32_TOLERANCE
        assert max_difference(videos[task], theirs[task]["video"]) < LORA_TOLERANCE
    assert max_difference(videos["a2v"], theirs["pro"]["video"]) > 10 * LORA_TOLERANCE  # the audio steered the video
    print("v1.2.0's rules against 1.0.0:")
    max_difference(videos["a2v_v1_2"], theirs["a2v"]["video"])


@on("ltx-2")
def test_the_fast_recipes_frames_match(fast_run, theirs):
    """Frames as the engine decodes them (official tiles, decode.video_frames) against ltx-core's decode_video with
    TilingConfig.default(), as ltx-pipelines' CLI decodes. Both truncate to uint8 (decode.to_uint8_frames follows
    ltx-core; diffusers would round, making about half the values one step higher). A float32 difference of ~1e-6
    flips a value lying on an integer boundary by one step: allowed for at most 0.1 % of the values."""
    components, plan, output = fast_run
    vae = components.pipeline.vae
    with decode.tiling(vae, plan.gen_height, plan.gen_width):
        chunks = decode.video_frames(vae, output.video_latents, plan)
        frames = torch.cat([torch.from_numpy(chunk.rgb) for chunk in chunks])
    assert max_difference(frames, theirs["fast"]["frames"]) <= 1
    differing = (frames != theirs["fast"]["frames"]).float().mean().item()
    print(f"uint8 values differing by one step: {differing:.2e}")
    assert differing < 1e-3
