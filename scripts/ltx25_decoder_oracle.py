"""Lightricks' ltx-pipelines 1.2.0 (commit 400fd31) decoding latents with LTX-2.5's diffusion video decoder, the
reference side of scripts/ltx25_decoder_parity.py. Runs in the oracle venv (docs/fidelity.md, "LTX-2.5"), never in
the project's process and never in CI:

    ORACLE_VENV/bin/python scripts/ltx25_decoder_oracle.py DIFFUSION_VAE.safetensors LATENTS.safetensors OUTPUT.safetensors MODE

MODE `chunked_eager`: the pipelines' own `VideoDecoder` block with its default `DiffVAEMode.CHUNKED_EAGER` (stage-5
attention in 4 W slabs whose missing border halos are edge-replicated). MODE `combined`: the same decoder built
without a mode, ltx-core's `CombinedDiffusionNABlock` (full-volume neighbourhood attention, the `COMBINED_COMPILE`
pathway uncompiled). Either way, without NATTEN (not installable on this CPU) the attention is ltx-core's eager
fallback (`fallback_na/eager.py`), as the official code falls back on such a host. LATENTS holds `latents` (normalised, as the pipelines hand them over) and
`seed` (the generator the decoder draws its noise from); OUTPUT gets `video`, [F, H, W, 3] in [0, 1], float32.
Shims, in this process only, as in scripts/ltx25_oracle.py: `torchaudio` is a stub (imported by ltx-core's audio
modules, unused here) and `torch.cuda.synchronize` a no-op.
"""

import importlib.machinery
import sys
import types

torchaudio = types.ModuleType("torchaudio")
torchaudio.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
sys.modules["torchaudio"] = torchaudio

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

torch.cuda.synchronize = lambda *args, **kwargs: None


def main() -> None:
    from ltx_pipelines.utils.blocks import VideoDecoder

    from ltx_core.model.video_vae.transformer.attention import NeighborhoodAttention3D
    from ltx_core.model.video_vae.transformer.fallback_na import EagerSdpaAttention

    checkpoint, latents_path, output, mode = sys.argv[1:5]
    inputs = load_file(latents_path)
    generator = torch.Generator().manual_seed(int(inputs["seed"]))
    block = VideoDecoder(checkpoint, torch.float32, torch.device("cpu"))
    if mode == "chunked_eager":
        chunks = list(block(inputs["latents"], None, generator))
    else:
        decoder = block._decoder_builder.with_module_ops(()).build(device=torch.device("cpu"), dtype=torch.float32)
        for module in decoder.modules():
            if isinstance(module, NeighborhoodAttention3D):
                module.attention_function = EagerSdpaAttention()
        with torch.inference_mode():
            chunks = list(decoder.eval().decode_video(inputs["latents"], None, generator))
    save_file({"video": torch.cat(chunks).float().contiguous()}, output)


if __name__ == "__main__":
    main()
