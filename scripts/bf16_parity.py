"""Stage by stage, how far this runtime in bf16 is from ltx-core / ltx-pipelines 1.0.0 in bf16 (the official
pipelines' own dtype), on the tiny official-format weights on the CPU, next to how far the official bf16 run is from
the official float32 run (docs/fidelity.md, "bf16"). Same files, same noise (the official run's), as
tests/engine/test_parity.py.

    .venv/bin/python scripts/bf16_parity.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "engine")]

import test_parity as parity  # noqa: E402

from ltx_runtime import official  # noqa: E402

TASKS = ["text", "vae_decode", "audio_decode", "fast"]


def oracle(root: Path, folder: Path, dtype: str) -> dict[str, dict[str, torch.Tensor]]:
    source, target = folder / "in.safetensors", folder / f"out-{dtype}.safetensors"
    save_file({key: value for key, value in parity.INPUTS.items() if key.split(".")[0] in TASKS}, str(source))
    subprocess.run([str(parity.ORACLE), str(ROOT / "tests" / "engine" / "parity" / "oracle.py"), str(root), str(source),
                    str(target), *TASKS], check=True, env={**os.environ, "LTX_ORACLE_DTYPE": dtype})  # fmt: skip
    outputs: dict[str, dict[str, torch.Tensor]] = {task: {} for task in TASKS}
    for key, value in load_file(str(target)).items():
        task, name = key.split(".", 1)
        outputs[task][name] = value.float()
    return outputs


def ours_in_bf16(root: Path, theirs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """This runtime's outputs of every stage, in bf16, named as in `stages`."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        components, plan, output = parity.run_recipe(monkeypatch, root, theirs["fast"], "ltx-runtime:tiny@1",
                                                     dtype=torch.bfloat16)  # fmt: skip
    pipeline = components.pipeline
    video, audio = parity.normalised(components, output)
    latent = parity.INPUTS["audio_decode.latent"]
    patched = latent.permute(0, 2, 1, 3).flatten(2)
    audio_vae = pipeline.audio_vae
    raw_audio = (patched * audio_vae.latents_std.float() + audio_vae.latents_mean.float()).unflatten(2, (8, 16))
    with torch.inference_mode():
        embeds, mask, _, _ = pipeline.encode_prompt(parity.PROMPT, do_classifier_free_guidance=False, device="cpu")
        video_context, audio_context, _ = pipeline.connectors(embeds, mask, padding_side="left")
        raw_video = parity.raw_video_latents(pipeline.vae, parity.INPUTS["vae_decode.latent"]).to(torch.bfloat16)
        decoded = pipeline.vae.decode(raw_video, return_dict=False)[0]
        mel = audio_vae.decode(raw_audio.permute(0, 2, 1, 3).to(torch.bfloat16), return_dict=False)[0]
        waveform = pipeline.vocoder(mel.to(pipeline.vocoder.dtype))
    official_length = theirs["fast"]["waveform"].shape[1]  # the engine pads the last 30 ms (test_parity.check_waveform)
    return {"text.video_context": video_context, "text.audio_context": audio_context, "fast.video": video,
            "fast.audio": audio, "fast.waveform": parity.waveform(components, plan, output)[:, :official_length],
            "vae_decode.decoded": decoded, "audio_decode.mel": mel, "audio_decode.waveform": waveform}  # fmt: skip


def difference(a: torch.Tensor, b: torch.Tensor) -> str:
    a, b = a.float().reshape(b.shape), b.float()
    relative = ((a - b).norm() / b.norm()).item()
    return f"{(a - b).abs().max().item():.2g} / {100 * relative:.2g} %"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = official.build_tiny_official(Path(folder) / "ltx-2", "ltx-2")
        bf16, float32 = oracle(root, Path(folder), "bfloat16"), oracle(root, Path(folder), "float32")
        ours = ours_in_bf16(root, bf16)
    print("| stage | runtime bf16 vs official bf16 | official bf16 vs official float32 |")
    print("|---|---|---|")
    for name, mine in ours.items():
        task, tensor = name.split(".")
        official_bf16, official_float32 = bf16[task][tensor], float32[task][tensor]
        print(f"| {name} | {difference(mine, official_bf16)} | {difference(official_bf16, official_float32)} |")


if __name__ == "__main__":
    main()
