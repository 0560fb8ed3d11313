"""LTX-2.5 Fast against Lightricks' ltx-pipelines 1.2.0 (commit 400fd31), stage by stage, on tiny split files: prints
the table of docs/fidelity.md's LTX-2.5 section. By hand only (the 1.2.0 code is not on PyPI; CI never runs it):

    .venv/bin/python scripts/ltx25_parity.py ORACLE_PYTHON

ORACLE_PYTHON is the python of a venv holding ltx-core / ltx-pipelines 1.2.0 (docs/fidelity.md says how to make it).
Both sides load the same files, written by `build_tiny_official(..., "ltx-2.5")`; the official side
(scripts/ltx25_oracle.py) runs in that venv in a subprocess, in float32, and records every noise tensor it draws;
this side runs the Fast recipe on the same files with that initial noise injected (the ancestral step noise is not
injected: both sides draw it from a generator seeded seed + 10000, and the table compares the draws).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine")]  # this checkout, not an installed copy

from test_parity import inject_noise, normalised, waveform  # noqa: E402

from ltx_runtime import decode, official, speed  # noqa: E402
from ltx_runtime.catalog import get_model  # noqa: E402
from ltx_runtime.geometry import plan_generation  # noqa: E402
from ltx_runtime.recipes import ancestral, fast  # noqa: E402
from ltx_runtime.request import GenerationRequest  # noqa: E402
from ltx_runtime.weights import load_components  # noqa: E402

PROMPT, SEED = "a cat over the ocean", 10  # as scripts/ltx25_oracle.py
MODEL = "ltx-runtime:tiny-ltx25@1"


def difference(name: str, ours, theirs) -> None:
    ours, theirs = torch.as_tensor(ours).double(), torch.as_tensor(theirs).double()
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    print(f"| {name} | {(ours - theirs).abs().max().item():.2g} |")


@torch.inference_mode()
def main() -> None:
    oracle = sys.argv[1]
    with tempfile.TemporaryDirectory() as folder:
        root = official.build_tiny_official(Path(folder) / "ltx-2.5", "ltx-2.5")
        target = Path(folder) / "official.safetensors"
        done = subprocess.run([oracle, str(ROOT / "scripts" / "ltx25_oracle.py"), str(root), str(target)],
                              capture_output=True, text=True, timeout=1200)  # fmt: skip
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        theirs = load_file(str(target))
        spec = get_model(MODEL)
        components = load_components(root, spec, torch.float32)
        speed.apply(components, speed.SpeedOptions.plain(), torch.device("cpu"))
        pipeline = components.pipeline
        plan = plan_generation(128, 64, 17 / 25, 25, spec.audio_sample_rate)
        print("| stage | max abs difference |\n|---|---|")
        from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

        difference("stage-1 sigmas", DISTILLED_SIGMA_VALUES + [0.0], theirs["stage_1_sigmas"])
        difference("stage-2 sigmas", STAGE_2_DISTILLED_SIGMA_VALUES + [0.0], theirs["stage_2_sigmas"])
        with torch.inference_mode():
            embeds, mask, _, _ = pipeline.encode_prompt(PROMPT, do_classifier_free_guidance=False)
            video_context, audio_context, _ = pipeline.connectors(embeds, mask, padding_side="left")
        difference("text: video context", video_context, theirs["video_context"])
        difference("text: audio context", audio_context, theirs["audio_context"])
        with torch.inference_mode():
            seconds = pipeline.duration_head(video_context, audio_context)
        difference("duration head: seconds", seconds.flatten(), theirs["duration_seconds"])
        for fps in (24, 25, 48, 50):
            frames = pipeline.duration_head.predict_num_frames(video_context, audio_context, frame_rate=fps,
                                                               temporal_compression_ratio=8)  # fmt: skip
            difference(f"duration head: frames at {fps} fps", frames, theirs[f"duration_frames_{fps}"])
        generator = torch.Generator().manual_seed(SEED)
        noise = ancestral.SharedNoise(SEED + ancestral.NOISE_SEED_OFFSET)
        drawn = [noise.draw(theirs[f"ancestral_noise_{index}"]) for index in range(sum(k.startswith("ancestral_noise_") for k in theirs))]
        difference("ancestral step noise (all draws)", torch.cat([d.flatten() for d in drawn]),
                   torch.cat([theirs[f"ancestral_noise_{index}"].flatten() for index in range(len(drawn))]))  # fmt: skip
        with pytest.MonkeyPatch.context() as monkeypatch:
            queue = inject_noise(monkeypatch, [theirs[f"noise_{index}"] for index in range(4)])
            stages = {}
            request = GenerationRequest(spec.id, PROMPT, plan.width, plan.height, plan.duration, plan.fps, audio=True,
                                        seed=SEED)  # fmt: skip
            original = components.latent_upsampler.forward

            def recording(latents, *args, **kwargs):
                stages["stage_1_video"] = latents
                stages["upsampled"] = original(latents, *args, **kwargs)
                return stages["upsampled"]

            monkeypatch.setattr(components.latent_upsampler, "forward", recording)
            with torch.inference_mode():
                output = fast.run(components, spec, plan, request, generator, lambda done, total: None)
            assert queue == [], "every official noise tensor was used"
        vae = pipeline.vae
        mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
        difference("stage 1 (8 ancestral steps): video latents", (stages["stage_1_video"] - mean) / std,
                   theirs["stage_1_video"])  # fmt: skip
        difference("latent upsampler", stages["upsampled"], theirs["upsampled"] * std + mean)
        video, audio = normalised(components, output)
        difference("stage 2 (3 Euler steps): final video latents", video, theirs["video"])
        difference("final audio latents", audio, theirs["audio"])
        ours_wave = waveform(components, plan, output)
        difference("waveform (48 kHz)", ours_wave[:, : theirs["waveform"].shape[1]], theirs["waveform"])
        with torch.inference_mode(), decode.tiling(vae, plan.gen_height, plan.gen_width):
            chunks = decode.video_frames(vae, output.video_latents, plan)
            frames = torch.cat([torch.from_numpy(chunk.rgb) for chunk in chunks])
        official_frames = theirs["frames"]
        # 1.2.0's decode_video yields floats in [0, 1] (its encoder converts them); truncated to uint8 here, as
        # decode.to_uint8_frames does
        official_frames = (official_frames.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        difference("decoded frames (uint8 steps)", frames, official_frames)
        print(f"uint8 values differing: {(frames != official_frames).float().mean().item():.2e}; "
              f"official ancestral={bool(theirs['ancestral'])}, image CRF {int(theirs['image_crf'])}, "
              f"{int(theirs['sample_rate'])} Hz")  # fmt: skip


if __name__ == "__main__":
    main()
