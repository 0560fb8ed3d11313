"""The real architectures, built on the meta device: parameter counts against published file sizes, and the shapes of
a full-size 1080p stage-2 pass through the transformer, the video VAE decoder and the vocoder (nothing is allocated)."""

from __future__ import annotations

import pytest
import torch

from ltx_runtime.catalog import PARAMETER_COUNTS
from ltx_runtime.fullsize import build_full_size, parameter_counts


@pytest.fixture(scope="module", params=["ltx-2", "ltx-2.3"])
def full_size(request):
    return request.param, build_full_size(request.param, "meta")


@pytest.mark.parametrize("architecture", ["ltx-2", "ltx-2.3"])
def test_the_catalog_parameter_counts_are_the_real_architectures(architecture):
    """The memory estimate reads the catalog's counts (no model is built to admit a clip); they must be the counts of
    the architectures fullsize.py builds."""
    assert PARAMETER_COUNTS[architecture] == parameter_counts(architecture)


def test_ltx2_parameter_counts_match_the_published_files():
    counts = parameter_counts("ltx-2")
    # "19B" model; text encoder Gemma 3 12B (ltx2-models.md section 1.1 and 1.5).
    assert 18.5e9 < counts["transformer"] < 19.5e9
    assert 11.8e9 < counts["text_encoder"] < 12.5e9
    # vae/diffusion_pytorch_model.safetensors is "2.44 GB" in bf16; the spatial upscaler file is 995765578 bytes.
    assert abs(counts["vae"] * 2 - 2.44e9) / 2.44e9 < 0.01
    assert abs(counts["latent_upsampler"] * 2 - 995765578) / 995765578 < 0.001


def test_ltx23_is_the_22b_model_with_a_48khz_vocoder():
    counts = parameter_counts("ltx-2.3")
    # The 22B single file holds the transformer and the text connectors.
    assert 21.5e9 < counts["transformer"] + counts["connectors"] < 22.5e9
    # ltx-2.3-spatial-upscaler-x2-1.0.safetensors: 995743504 bytes.
    assert abs(counts["latent_upsampler"] * 2 - 995743504) / 995743504 < 0.001
    vocoder = build_full_size("ltx-2.3", "meta").pipeline.vocoder
    assert vocoder.config.output_sampling_rate == 48000


def test_a_1080p_stage_2_pass_has_the_real_shapes(full_size):
    architecture, components = full_size
    pipeline = components.pipeline
    frames, height, width = 26, 34, 60  # 8 s at 25 fps (201 frames) of 1920x1088, in latents
    audio_frames = 201  # 25 audio latents per second
    # The connectors' outputs: Gemma's 3840 wide for LTX-2 (the transformer projects them), already projected per
    # modality for LTX-2.3.
    video_text_width, audio_text_width = (3840, 3840) if architecture == "ltx-2" else (4096, 2048)
    meta = dict(device="meta", dtype=torch.bfloat16)
    video_text = torch.empty(1, 1024, video_text_width, **meta)
    audio_text = torch.empty(1, 1024, audio_text_width, **meta)
    with torch.no_grad():
        video, audio = pipeline.transformer(
            hidden_states=torch.empty(1, frames * height * width, 128, **meta),
            audio_hidden_states=torch.empty(1, audio_frames, 128, **meta),
            encoder_hidden_states=video_text,
            audio_encoder_hidden_states=audio_text,
            timestep=torch.empty(1, device="meta"),
            sigma=torch.empty(1, device="meta"),  # LTX-2.3 modulates cross-attention by the sigma too
            encoder_attention_mask=torch.empty(1, 1024, device="meta"),
            audio_encoder_attention_mask=torch.empty(1, 1024, device="meta"),
            num_frames=frames, height=height, width=width, fps=25.0, audio_num_frames=audio_frames, return_dict=False,
        )  # fmt: skip
        assert video.shape == (1, frames * height * width, 128)
        assert audio.shape == (1, audio_frames, 128)

        # A 3-latent-frame tile of the decoder: 32x spatially, 8x temporally (8k+1 frames).
        pixels = pipeline.vae.decode(torch.empty(1, 128, 3, height, width, **meta), return_dict=False)[0]
        assert pixels.shape == (1, 3, 17, 1088, 1920)

        # 1 s of mel frames (100/s, 64 bins, stereo) -> 1 s of audio at the vocoder's rate.
        waveform = pipeline.vocoder(torch.empty(1, 2, 100, 64, device="meta", dtype=pipeline.vocoder.dtype))
        assert waveform.shape[-1] == pipeline.vocoder.config.output_sampling_rate
