"""The live preview: a fixed latent-to-RGB map applied to the stage-1 latents every few steps, at a negligible cost."""

from __future__ import annotations

import base64
import io
import time

import torch
from PIL import Image

from ltx_runtime import preview as preview_module
from ltx_runtime.geometry import plan_generation
from ltx_runtime.preview import LatentPreview, rgb_projection
from ltx_runtime.request import GenerationRequest

MODEL = "ltx-runtime:tiny@1"


def _png(data_uri: str) -> Image.Image:
    assert data_uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))


def test_previews_of_stage_1_cost_a_small_part_of_the_clip(engine, tmp_path, monkeypatch):
    previews = []
    spent = []
    observe = LatentPreview.__call__

    def timed(self, *args):  # the whole cost of the preview inside the denoising loop
        started = time.perf_counter()
        observe(self, *args)
        spent.append(time.perf_counter() - started)

    monkeypatch.setattr(LatentPreview, "__call__", timed)
    request = GenerationRequest(MODEL, "a lighthouse", width=512, height=288, duration=1, fps=8, audio=False, seed=3)
    engine.generate(request, tmp_path / "warm.mp4")  # loads the model
    rgb_projection(engine.load(MODEL).pipeline.vae)  # fitted once per VAE, not per clip
    started = time.perf_counter()
    engine.generate(request, tmp_path / "clip.mp4", preview=lambda *image_step_steps: previews.append(image_step_steps))
    total = time.perf_counter() - started

    assert [(step, steps) for _, step, steps in previews] == [(2, 8), (4, 8), (6, 8), (8, 8)]  # Fast: 8 stage-1 steps
    plan = plan_generation(512, 288, 1, 8, 24000)
    assert _png(previews[0][0]).size == (plan.stage1_width // 32, plan.stage1_height // 32)
    assert previews[0][0] != previews[-1][0]  # it changes as the clip denoises
    assert len(spent) == 8 and sum(spent) < 0.03 * total, (sum(spent), total)


def test_the_map_follows_the_vae(engine):
    """Fitted by least squares: on fresh latents it predicts the VAE's average colour per latent pixel better than a
    constant colour does."""
    vae = engine.load(MODEL).pipeline.vae
    projection = rgb_projection(vae)
    assert projection.shape == (vae.config.latent_channels + 1, 3)
    latents = torch.randn(1, vae.config.latent_channels, 1, 12, 12, generator=torch.Generator().manual_seed(7))
    decoded = next(preview_module.decode_video_chunks(vae, preview_module.denormalize(vae, latents)))[:, :, 0]
    target = torch.nn.functional.avg_pool2d(decoded.float(), 32)[0].reshape(3, -1).T
    samples = torch.cat([latents[0, :, 0].reshape(latents.shape[1], -1).T, torch.ones(144, 1)], dim=1)
    error = (samples @ projection - target).square().mean()
    constant = (target - target.mean(0)).square().mean()
    assert error < constant


def test_previews_every_nth_step_by_setting(tiny_root, tmp_path):
    """Each preview reads a latent frame back from the GPU (a sync): `preview_every` spaces them out; the last step
    of stage 1 always gets one."""
    from ltx_runtime.engine import Engine

    engine = Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", preview_every=3)
    previews = []
    request = GenerationRequest(MODEL, "a lighthouse", width=128, height=64, duration=1, fps=8, audio=False, seed=3)
    engine.generate(request, tmp_path / "clip.mp4", preview=lambda *image_step_steps: previews.append(image_step_steps))
    assert [step for _, step, _ in previews] == [3, 6, 8]


def test_a_preview_is_sent_at_the_next_preview_step_from_a_copy_made_at_its_own(engine):
    """The copy to the host is started at a preview step and read at the next one (on CUDA asynchronous, into pinned
    memory, behind an event; on the CPU a plain copy): each image still shows the latents of its own step, even after
    the denoiser has overwritten them in place, and the last stage-1 step sends its own at once."""
    plan = plan_generation(128, 64, 1, 8, 24000)
    sent = []
    vae = engine.load(MODEL).pipeline.vae
    observer = LatentPreview(vae, plan, 6, lambda *image_done_steps: sent.append(image_done_steps))
    frames, height, width = observer.shape
    latents = torch.zeros(1, frames * height * width, 8)
    expected = {}
    for step in range(1, 7):
        latents.copy_(torch.randn(latents.shape, generator=torch.Generator().manual_seed(step)))  # in place
        observer(latents, step, 6)
        if step % 2 == 0:
            expected[step] = observer.image(latents[0].reshape(frames, height, width, -1)[frames // 2].clone())
            assert [done for _, done, _ in sent] == list(range(2, step + 1 if step == 6 else step, 2))
    assert [(image, done, steps) for image, done, steps in sent] == [(expected[step], step, 6) for step in (2, 4, 6)]
    assert len(set(expected.values())) == 3 and observer.pending is None


def test_a_host_copy_off_the_gpu_is_a_plain_copy():
    tensor = torch.arange(6.0)
    copy = preview_module.HostCopy(tensor)
    tensor.zero_()
    assert copy.event is None and copy.result().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # not a view
