"""LTX-2.5 against Lightricks' ltx-pipelines 1.2.0 (commit 400fd31), stage by stage, on tiny split files: prints a
table of docs/fidelity.md's LTX-2.5 section. By hand only (the 1.2.0 code is not on PyPI; CI never runs it):

    .venv/bin/python scripts/ltx25_parity.py ORACLE_PYTHON [--case fast|pro|image|keyframes|pro-image|pro-keyframes|pro-audio]
        [--dtype float32|bfloat16] [--steps N]

ORACLE_PYTHON is the python of a venv holding ltx-core / ltx-pipelines 1.2.0 (docs/fidelity.md says how to make it).
Both sides load the same files, written by `build_tiny_official(..., "ltx-2.5")` with the keyframe position
embedding made random (the builder leaves it zero, as diffusers initialises it: no comparison could see whether it
is added); the official side (scripts/ltx25_oracle.py) runs in that venv in a subprocess and records every noise
tensor it draws; this side runs our recipe on the same files with that initial noise injected (the ancestral step
noise is not injected: both sides draw it from a generator seeded seed + 10000, and the table compares the draws).

Cases: `fast` (2.5 Fast, text to video: `DistilledPipeline`), `pro` (2.5 Pro: `TI2VidTwoStagesPipeline` with N
guided steps, STG on block 1 of the tiny transformer's two instead of 28), `image` (2.5 Fast with a first frame from
a PNG file, through both sides' own image preparation), `keyframes` (a first and a last frame), `pro-image` and
`pro-keyframes` (2.5 Pro with the same images), `pro-audio` (2.5 Pro's audio-to-video: `A2VidPipelineTwoStage`, the
16 kHz stereo waveform of tests/engine/test_parity.py, at the audio encoder's rate so that neither side resamples).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine")]  # this checkout, not an installed copy

from test_parity import A2V_WAVEFORM, inject_noise, normalised, waveform  # noqa: E402

from ltx_runtime import decode, official, recipes, speed  # noqa: E402
from ltx_runtime.catalog import Recipe, get_model  # noqa: E402
from ltx_runtime.engine import image_crf  # noqa: E402
from ltx_runtime.geometry import plan_generation  # noqa: E402
from ltx_runtime.recipes import ancestral, fast, guided  # noqa: E402
from ltx_runtime.request import GenerationRequest  # noqa: E402
from ltx_runtime.weights import load_components  # noqa: E402

PROMPT, SEED = "a cat over the ocean", 10  # as scripts/ltx25_oracle.py
MODELS = {"fast": "ltx-runtime:tiny-ltx25@1", "pro": "ltx-runtime:tiny-ltx25-pro@1"}
CASES = {"fast": ("fast", 0, False), "pro": ("pro", 0, False), "image": ("fast", 1, False),
         "keyframes": ("fast", 2, False), "pro-image": ("pro", 1, False), "pro-keyframes": ("pro", 2, False),
         "pro-audio": ("pro", 0, True)}
"""Each case: the oracle's pipeline (`fast`: DistilledPipeline, `pro`: TI2VidTwoStagesPipeline), its image count (a
first frame, then a last frame) and whether the audio is given (audio-to-video)."""
STG_BLOCK = 1
"""The tiny transformer has two blocks; the official 28 does not exist in it."""


def difference(name: str, ours, theirs) -> torch.Tensor:
    ours, theirs = torch.as_tensor(ours).double(), torch.as_tensor(theirs).double()
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    gap = (ours - theirs).abs()
    print(f"| {name} | {gap.max().item():.2g} | {gap.mean().item():.2g} |")
    return gap


def random_keyframe_embedding(root: Path) -> None:
    """Give both transformer files a random `keyframes_abs_pos_embedding` (ltx-core 1.2.0 adds it to the first latent
    frame's tokens of every generation; zero, it would change nothing)."""
    generator = torch.Generator().manual_seed(1)
    for role in ("distilled", "dev"):
        path = root / official.SPLIT_FILES[role]
        with safe_open(str(path), "pt") as file:
            metadata = file.metadata()
        tensors = load_file(str(path))
        key = "model.diffusion_model.keyframes_abs_pos_embedding"
        tensors[key] = torch.randn(tensors[key].shape, generator=generator).to(tensors[key].dtype)
        save_file(tensors, str(path), metadata=metadata)


def test_image(path: Path, seed: int) -> bytes:
    """A smooth 120 x 200 colour image (not 2:1, so that both sides resize and crop), written as PNG."""
    rows, columns = np.mgrid[0:120, 0:200] / 40.0
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    pixels = np.stack([np.sin(rows * (c + 1) + columns + phase[c]) for c in range(3)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(((pixels + 1) * 127.5).astype(np.uint8)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def oracle_run(oracle: str, root: Path, arguments: list[str]) -> dict[str, torch.Tensor]:
    target = root.parent / "official.safetensors"
    done = subprocess.run([oracle, str(ROOT / "scripts" / "ltx25_oracle.py"), str(root), str(target), *arguments],
                          capture_output=True, text=True, timeout=3000)  # fmt: skip
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return load_file(str(target))


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("oracle", help="the python of the venv with ltx-pipelines 1.2.0")
    parser.add_argument("--case", choices=tuple(CASES), default="fast")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--steps", type=int, default=30, help="pro: guided stage-1 steps (official: 30)")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    pipeline_case, image_count, audio_given = CASES[args.case]
    spec = get_model(MODELS[pipeline_case])
    with tempfile.TemporaryDirectory() as folder:
        root = official.build_tiny_official(Path(folder) / "ltx-2.5", "ltx-2.5")
        random_keyframe_embedding(root)
        components = load_components(root, spec, dtype, video_decoder="conv")  # the oracle decodes with the conv VAE
        speed.apply(components, speed.SpeedOptions.plain(), torch.device("cpu"))
        plan = plan_generation(128, 64, 17 / 25, 25, spec.audio_sample_rate)
        crf = image_crf(components)
        arguments = ["--case", pipeline_case, "--dtype", args.dtype,
                     "--steps", str(args.steps), "--stg-block", str(STG_BLOCK), "--crf", str(crf)]  # fmt: skip
        files = {0: test_image(Path(folder) / "first.png", 1)} if image_count else {}
        arguments += ["--image", str(Path(folder) / "first.png")] if files else []
        if image_count == 2:
            files[plan.frames - 1] = test_image(Path(folder) / "last.png", 2)
            arguments += ["--last", str(Path(folder) / "last.png")]
        soundtrack = None
        if audio_given:
            assert components.pipeline.audio_vae.config.sample_rate == 16000  # A2V_WAVEFORM's rate: no resampling
            save_file({"waveform": A2V_WAVEFORM[None]}, str(Path(folder) / "soundtrack.safetensors"))
            arguments += ["--soundtrack", str(Path(folder) / "soundtrack.safetensors")]
            soundtrack = A2V_WAVEFORM.T.numpy()
        theirs = oracle_run(args.oracle, root, arguments)
        compare(args, pipeline_case == "pro", spec, components, plan, theirs, files, crf, soundtrack)


def compare(args, is_pro: bool, spec, components, plan, theirs, files: dict[int, bytes], crf: int,
            soundtrack: np.ndarray | None) -> None:
    pipeline = components.pipeline
    print(f"case {args.case}, {args.dtype}\n\n| stage | max abs difference | mean abs difference |\n|---|---|---|")
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

    if is_pro:
        official_params = guided.PARAMS[Recipe.LTX25_PRO]
        ours = [[official_params.video_cfg, official_params.video_stg, official_params.video_rescale,
                 official_params.video_modality, 0, official_params.stg_block],
                [official_params.audio_cfg, official_params.audio_stg, official_params.audio_rescale,
                 official_params.audio_modality, 0, official_params.stg_block]]  # fmt: skip
        difference("guidance: video / audio CFG, STG, rescale, modality, skip step, STG block (`LTX_2_4_PARAMS`)",
                   ours, theirs["guider_params"])  # fmt: skip
        difference("stage-1 steps (official default)", official_params.steps, theirs["steps"])
        difference(f"stage-1 sigmas ({args.steps} steps, `LTX2Scheduler`)", guided.stage_1_sigmas(args.steps) + [0.0],
                   theirs["stage_1_sigmas"])  # fmt: skip
    else:
        difference("stage-1 sigmas", DISTILLED_SIGMA_VALUES + [0.0], theirs["stage_1_sigmas"])
    difference("stage-2 sigmas", STAGE_2_DISTILLED_SIGMA_VALUES + [0.0], theirs["stage_2_sigmas"])
    embeds, mask, _, _ = pipeline.encode_prompt(PROMPT, do_classifier_free_guidance=False)
    video_context, audio_context, _ = pipeline.connectors(embeds, mask, padding_side="left")
    difference("text: video context", video_context, theirs["video_context"])
    difference("text: audio context", audio_context, theirs["audio_context"])
    if "duration_seconds" in theirs:
        seconds = pipeline.duration_head(video_context, audio_context)
        difference("duration head: seconds", seconds.flatten(), theirs["duration_seconds"])
        for fps in (24, 25, 48, 50):
            frames = pipeline.duration_head.predict_num_frames(video_context, audio_context, frame_rate=fps,
                                                               temporal_compression_ratio=8)  # fmt: skip
            difference(f"duration head: frames at {fps} fps", frames, theirs[f"duration_frames_{fps}"])
    drawn = sum(key.startswith("ancestral_noise_") for key in theirs)
    if drawn:
        noise = ancestral.SharedNoise(SEED + ancestral.NOISE_SEED_OFFSET)
        ours = [noise.draw(theirs[f"ancestral_noise_{index}"]).flatten() for index in range(drawn)]
        difference(f"ancestral step noise ({drawn} draws)", torch.cat(ours),
                   torch.cat([theirs[f"ancestral_noise_{index}"].flatten() for index in range(drawn)]))  # fmt: skip

    images = []
    vae = pipeline.vae
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    for index, (frame, data) in enumerate(files.items()):
        pixels = recipes.decode_frame_image(data, crf)
        images.append(recipes.ConditioningImage(pixels, frame))
        name = "first" if frame == 0 else "last"
        difference(f"{name} frame: decoded and re-compressed at CRF {crf} (uint8)", pixels,
                   theirs[f"image_{index}_pixels"])  # fmt: skip
        sizes = ((1, (plan.stage1_width, plan.stage1_height)), (2, (plan.gen_width, plan.gen_height)))
        for stage, (width, height) in sizes:
            latent = recipes.encode_first_frame(pipeline, pixels, width, height)
            difference(f"{name} frame: resized, cropped, encoded at stage {stage}", (latent - mean) / std,
                       theirs[f"image_{index}_latent_stage_{stage}"])  # fmt: skip

    generator = torch.Generator().manual_seed(SEED)
    with pytest.MonkeyPatch.context() as monkeypatch:
        queue = inject_noise(monkeypatch, [theirs[f"noise_{index}"] for index in range(4)])
        stages, steps = {}, []
        request = GenerationRequest(spec.id, PROMPT, plan.width, plan.height, plan.duration, plan.fps, audio=True,
                                    seed=SEED)  # fmt: skip
        original = components.latent_upsampler.forward

        def recording(latents, *args, **kwargs):
            stages["stage_1_video"] = latents.clone()
            upsampled = original(latents, *args, **kwargs)
            stages["upsampled"] = upsampled.clone()  # before image-to-video overwrites its first frame in place
            return upsampled

        monkeypatch.setattr(components.latent_upsampler, "forward", recording)
        if is_pro:
            monkeypatch.setitem(guided.PARAMS, spec.recipe, replace(guided.PARAMS[spec.recipe], steps=args.steps,
                                                                    stg_block=STG_BLOCK))  # fmt: skip
            output = guided.run(components, spec, plan, request, generator, lambda done, total: None,
                                images=tuple(images), soundtrack=soundtrack,
                                on_latents=lambda latents, done, total: steps.append(latents))  # fmt: skip
        else:
            output = fast.run(components, spec, plan, request, generator, lambda done, total: None,
                              images=tuple(images))  # fmt: skip
        assert queue == [], "every official noise tensor was used"
    if steps:
        difference("stage 1 after step 1: video latents", steps[0], theirs["stage_1_video_step_1"])
    label = f"{args.steps} guided Euler steps" if is_pro else "8 Euler-ancestral steps"
    difference(f"stage 1 ({label}): video latents", (stages["stage_1_video"] - mean) / std, theirs["stage_1_video"])
    difference("latent upsampler", stages["upsampled"], theirs["upsampled"] * std + mean)
    video, audio = normalised(components, output)
    lora = ", distilled LoRA" if is_pro else ""
    difference(f"stage 2 (3 Euler steps{lora}): final video latents", video, theirs["video"])
    kept = "stage-1" if is_pro else "final"
    kept = "the encoded input, held" if soundtrack is not None else kept
    difference(f"audio latents ({kept}, as the pipeline keeps)", audio, theirs["audio"])
    ours_wave = waveform(components, plan, output)
    difference("waveform (48 kHz)", ours_wave[:, : theirs["waveform"].shape[1]], theirs["waveform"])
    with decode.tiling(vae, plan.gen_height, plan.gen_width):
        chunks = decode.video_frames(vae, output.video_latents, plan)
        frames = torch.cat([torch.from_numpy(chunk.rgb) for chunk in chunks])
    # 1.2.0's decode_video yields floats in [0, 1] (its encoder converts them); truncated to uint8 here, as
    # decode.to_uint8_frames does
    official_frames = (theirs["frames"].float().clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    gap = difference("decoded frames (uint8 steps)", frames, official_frames)
    psnr = 10 * torch.log10(255.0**2 / gap.pow(2).mean()).item() if gap.max() > 0 else float("inf")
    print(f"\nuint8 values differing: {(gap > 0).double().mean().item():.2e}; frame PSNR {psnr:.1f} dB; "
          f"official stage-1 ancestral={bool(theirs['ancestral']) and not is_pro}, "
          f"image CRF {int(theirs['image_crf'])} (the VAE file's: "
          f"{int(theirs['image_crf_of_the_vae_file'])}), ours {crf}, {int(theirs['sample_rate'])} Hz")  # fmt: skip


if __name__ == "__main__":
    main()
