"""LTX-2.5's diffusion video decoder (ltx_runtime/diffusion_decode.py) against ltx-pipelines 1.2.0's, on the same
tiny diffusion VAE file, latents and seed: prints the rows of docs/fidelity.md's "LTX-2.5 diffusion decoder" table.
By hand only (the 1.2.0 code is not on PyPI; CI never runs it):

    .venv/bin/python scripts/ltx25_decoder_parity.py ORACLE_PYTHON

ORACLE_PYTHON is the python of the venv holding ltx-core / ltx-pipelines 1.2.0 (docs/fidelity.md says how to make
it); the official side (scripts/ltx25_decoder_oracle.py) runs there in a subprocess, in float32. Both draw the
decoder's noise from a generator seeded alike; the official side takes the latents normalised (its decoder applies
the statistics), ours denormalised (as our recipes hand them over).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # this checkout, not an installed copy

from ltx_runtime import diffusion_decode, official  # noqa: E402

SEED = 7
SHAPES = {"64x128, 17 frames": (3, 2, 4), "96x160, 25 frames": (4, 3, 5)}
"""Latent grids (frames, height, width) decoded: 8k+1 frames, 32 px per latent."""
MODES = ("combined", "chunked_eager")
"""The official decoder's pathways compared (scripts/ltx25_decoder_oracle.py)."""


def main() -> None:
    oracle = sys.argv[1]
    with tempfile.TemporaryDirectory() as folder:
        root = official.build_tiny_official(Path(folder) / "ltx-2.5", "ltx-2.5")
        checkpoint = root / official.SPLIT_FILES["diffusion_vae"]
        decoder = official.load_diffusion_decoder(checkpoint, torch.float32)
        diffusion_decode.prepare(decoder)
        print("| clip | official DiffVAE mode | max abs difference (pixels in [0, 1]) | mean abs |")
        print("|---|---|---|---|")
        for (name, grid), mode in ((shape, mode) for shape in SHAPES.items() for mode in MODES):
            latents = torch.randn(1, 128, *grid, generator=torch.Generator().manual_seed(SEED))
            inputs, output = Path(folder) / "latents.safetensors", Path(folder) / "official.safetensors"
            save_file({"latents": latents, "seed": torch.tensor(SEED)}, str(inputs))
            done = subprocess.run([oracle, str(ROOT / "scripts" / "ltx25_decoder_oracle.py"), str(checkpoint),
                                   str(inputs), str(output), mode], capture_output=True, text=True, timeout=1200)  # fmt: skip
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            theirs = load_file(str(output))["video"].double()
            stats = decoder.latents_std.view(1, -1, 1, 1, 1), decoder.latents_mean.view(1, -1, 1, 1, 1)
            video = diffusion_decode.decode(decoder, latents * stats[0] + stats[1], torch.Generator().manual_seed(SEED))
            ours = ((video[0].double() + 1) / 2).clamp(0, 1).permute(1, 2, 3, 0)
            assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
            difference = (ours - theirs).abs()
            print(f"| {name} | {mode} | {difference.max().item():.2g} | {difference.mean().item():.2g} |")


if __name__ == "__main__":
    main()
