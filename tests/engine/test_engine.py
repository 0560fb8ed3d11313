"""The engine end to end on tiny weights: the two-stage Fast recipe, reproducibility, every output format."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import probe, read_frames
from ltx_runtime.request import LAST, GenerationRequest, Keyframe, RequestError
from ltx_runtime.media import OutputFormat
from ltx_runtime.progress import STAGES
from ltx_runtime.recipes import fast, guided

TINY = "ltx-runtime:tiny@1"


def request(**overrides):
    fields = dict(model=TINY, prompt="a cat over the ocean", width=200, height=104, duration=1, fps=17, audio=True, seed=7)
    fields.update(overrides)
    return GenerationRequest(**fields)


def test_two_stage_recipe_shapes_and_progress(engine, tmp_path, monkeypatch):
    """Stage 1 runs at half the generation size, the upsampler doubles it, stage 2 refines at full size."""
    calls = []
    original_run = fast.run

    def recording_run(components, spec, plan, asked, generator, on_step, **options):
        output = original_run(components, spec, plan, asked, generator, on_step, **options)
        calls.append((plan, output))
        return output

    upsampler_inputs = []
    components = engine.load(TINY)
    handle = components.latent_upsampler.register_forward_hook(
        lambda module, args, result: upsampler_inputs.append((args[0].shape, result.shape))
    )
    monkeypatch.setattr(fast, "run", recording_run)
    reports = []
    try:
        result = engine.generate(request(), tmp_path / "clip.mp4", progress=lambda stage, done: reports.append((stage, done)))
    finally:
        handle.remove()

    # Every stage in order, each from its start to its end: 8 distilled sigmas, 3 stage-2 sigmas, the decode per chunk.
    assert [stage for stage, _ in reports if stage not in ("stage_1", "stage_2", "decoding")] == [
        "text_encoding", "upsampling", "encoding", "encoding"]
    assert list(dict.fromkeys(stage for stage, _ in reports)) == list(STAGES[:-1])  # uploading is the server's
    assert [done for stage, done in reports if stage == "stage_1"] == [i / 8 for i in range(1, 9)]
    assert [done for stage, done in reports if stage == "stage_2"] == [1 / 3, 2 / 3, 1.0]
    decoding = [done for stage, done in reports if stage == "decoding"]
    assert decoding[0] == 0.0 and decoding[-1] == 1.0 and decoding == sorted(decoding) and len(decoding) >= 2
    assert [done for stage, done in reports if stage == "encoding"] == [0.0, 1.0]
    (plan, output), = calls
    assert (plan.gen_width, plan.gen_height, plan.gen_frames) == (256, 128, 17)
    # stage 1: 128x64 pixels -> 4x2 latents; upsampler: x2 -> 8x4; 17 frames -> 3 latent frames
    assert upsampler_inputs == [((1, 8, 3, 2, 4), (1, 8, 3, 4, 8))]
    assert output.video_latents.shape == (1, 8, 3, 4, 8)
    assert output.audio_latents.shape == (1, 2, 25, 16)  # 17/17 s of audio at 25 latents/s, 64 mel bins / 4
    assert set(output.timings) == {"text_encoding", "stage_1", "upsample", "stage_2"}
    assert set(result.timings) >= {"stage_1", "stage_2", "audio_decode", "decode_and_encode", "total"}
    assert result.tiny_weights and result.seed == 7


@pytest.mark.parametrize("output_format", list(OutputFormat))
@pytest.mark.parametrize("audio", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_every_format_with_and_without_audio(engine, tmp_path, output_format, audio):
    path = tmp_path / f"clip.{output_format.value}"
    result = engine.generate(request(output_format=output_format, audio=audio, duration=2, fps=12), path)
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (200, 104, 24, 12)
    assert info.duration == pytest.approx(2.0, abs=0.03)
    assert info.video_codec == ("vp9" if output_format is OutputFormat.WEBM else "h264")
    if audio:
        assert info.audio_codec == ("opus" if output_format is OutputFormat.WEBM else "aac")
        assert info.audio_channels == 2
        assert info.audio_rate == (48000 if output_format is OutputFormat.WEBM else 24000)
        assert info.audio_duration == pytest.approx(2.0, abs=0.03)
        assert result.sample_rate == 24000
    else:
        assert info.audio_codec is None and result.sample_rate is None
    assert (result.width, result.height, result.frames, result.fps, result.duration) == (200, 104, 24, 12, 2)


@pytest.mark.slow
def test_same_seed_same_frames_other_seed_other_frames(engine, tmp_path):
    first = engine.generate(request(seed=1234), tmp_path / "a.mp4")
    second = engine.generate(request(seed=1234), tmp_path / "b.mp4")
    third = engine.generate(request(seed=4321), tmp_path / "c.mp4")
    a, b, c = (read_frames(r.path) for r in (first, second, third))
    assert a.shape == (17, 104, 200, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


def test_models_stay_resident_between_calls(engine, tmp_path):
    components = engine.load(TINY)
    result = engine.generate(request(), tmp_path / "clip.mp4")
    assert engine.load(TINY) is components
    assert "loading" not in result.timings
    # Model ids sharing a weights folder share one copy of it (here: the tiny LTX-2 folder).
    assert engine.load("ltx-runtime:tiny-pro@1") is components and engine.load("lightricks:2@1") is components


def test_components_are_shared_not_copied(engine):
    from ltx_runtime.recipes import pipelines_for, unshifted_scheduler

    components = engine.load(TINY)
    denoise, upsample = pipelines_for(components, unshifted_scheduler(components.pipeline))
    assert denoise.transformer is components.pipeline.transformer
    assert denoise.text_encoder is components.pipeline.text_encoder
    assert upsample.vae is components.pipeline.vae
    assert upsample.latent_upsampler is components.latent_upsampler
    assert denoise.scheduler.config.use_dynamic_shifting is False  # distilled sigmas are used as published


def test_a_random_seed_is_chosen_and_reported(engine, tmp_path):
    result = engine.generate(request(seed=None), tmp_path / "clip.mp4")
    assert 0 <= result.seed < 2**63


def test_cpu_engine_runs_in_float32(engine):
    assert engine.device == torch.device("cpu")
    assert engine.load(TINY).pipeline.transformer.dtype == torch.float32


@pytest.mark.parametrize(
    "overrides, parameter",
    [
        (dict(model="lightricks:9@9"), "model"),
        (dict(prompt="a"), "prompt"),
        (dict(width=100), "width"),
        (dict(model="lightricks:2@1", width=1280, height=720), "width"),
        (dict(duration=11), "duration"),
        (dict(duration=1.5), "duration"),
        (dict(fps=60), "fps"),
        (dict(seed=-1), "seed"),
        (dict(quality=100), "quality"),
        (dict(steps=8), "steps"),  # the distilled recipe takes no step count
        (dict(model="ltx-runtime:tiny-pro@1", steps=1), "steps"),
        (dict(model="ltx-runtime:tiny-ltx23@1", steps=101), "steps"),
        (dict(model="ltx-runtime:tiny-ltx23@1", guidance_scale=0.5), "guidance_scale"),
        (dict(model="ltx-runtime:tiny-ltx23@1", negative_prompt=""), "negative_prompt"),
        (dict(negative_prompt="fog"), "negative_prompt"),
    ],
)
def test_bad_requests_name_the_parameter(engine, tmp_path, overrides, parameter):
    with pytest.raises(RequestError) as raised:
        engine.generate(request(**overrides), tmp_path / "clip.mp4")
    assert raised.value.parameter == parameter
    assert not (tmp_path / "clip.mp4").exists()


def png_bytes(width, height, color):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def gradient_png(width, height):
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def luma_difference(a, b):
    """Mean absolute difference of luma (yuv420p keeps luma at full resolution, chroma at a quarter), with the
    BT.709 weights the files are written with."""
    weights = np.array([0.2126, 0.7152, 0.0722])
    return np.abs(a.astype(float) @ weights - b.astype(float) @ weights).mean()


def test_first_frame_image_conditions_the_clip(engine, tmp_path, monkeypatch):
    """Image-to-video on tiny weights: the clip starts from the image as the model's VAE sees it.

    Random weights cannot draw the image itself, and the real decoder is not causal (the first frame also depends on
    the next latent frames), so the check is in latent space: the final first latent frame equals the image encoded
    at the generation size (and a clip without the image does not); in the file, the first frame is the decode of
    those latents (mean absolute luma difference under 4 levels of 255 after H.264).
    """
    from ltx_runtime.decode import to_uint8_frames
    from ltx_runtime.geometry import crop_frames, plan_generation
    from ltx_runtime.recipes import decode_frame_image, encode_first_frame

    latents = []
    original_run = fast.run
    monkeypatch.setattr(fast, "run", lambda *args, **kwargs: latents.append(out := original_run(*args, **kwargs)) or out)
    image_bytes = gradient_png(400, 208)
    with_image = engine.generate(request(keyframes=(Keyframe(image_bytes),), audio=True, quality=99), tmp_path / "i2v.mp4")
    engine.generate(request(quality=99), tmp_path / "t2v.mp4")
    info = probe(with_image.path)
    assert (info.width, info.height, info.frames, info.audio_codec) == (200, 104, 17, "aac")

    pipe = engine.load(TINY).pipeline
    with torch.inference_mode():
        image_latent = encode_first_frame(pipe, decode_frame_image(image_bytes, 33), 256, 128)
        torch.testing.assert_close(latents[0].video_latents[:, :, :1], image_latent, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(latents[1].video_latents[:, :, :1], image_latent, atol=0.1)
        decoded = pipe.vae.decode(latents[0].video_latents, return_dict=False)[0][:, :, :1]
    reference = to_uint8_frames(crop_frames(decoded, plan_generation(200, 104, 1, 17, 24000)))[0]
    assert luma_difference(read_frames(with_image.path)[0], reference) < 4


def solid_png(colour, size=(300, 160)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("model", [TINY, "ltx-runtime:tiny-pro@1"])
def test_keyframes_are_held_as_the_official_code_holds_them(engine, tmp_path, monkeypatch, model):
    """First and last frame (and one in between) on tiny weights: the first image replaces latent frame 0, the others
    are appended as one latent frame of tokens each (ltx-core `VideoConditionByKeyframeIndex`), placed at their
    output frame: time [frame, frame + 1) / fps without the causal fix, space as the clip's. Every conditioned token
    has timestep 0 in every step of both stages (denoise mask 0, strength 1), the others the step's sigma; the
    appended tokens are dropped before decoding and the file has the clip's shape."""
    from ltx_runtime.geometry import plan_generation
    from ltx_runtime.recipes import decode_frame_image, encode_first_frame

    transformer = engine.load(model).pipeline.transformer
    calls = []
    handle = transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((kwargs["timestep"].clone(), kwargs["video_coords"].clone(),
                                                   kwargs["hidden_states"].shape[1])), with_kwargs=True)  # fmt: skip
    first = gradient_png(400, 208)
    keyframes = (Keyframe(first, 0), Keyframe(solid_png((0, 0, 255)), LAST), Keyframe(solid_png((0, 255, 0)), 5))
    try:
        result = engine.generate(request(model=model, keyframes=keyframes), tmp_path / "keyframes.mp4")
    finally:
        handle.remove()
    info = probe(result.path)
    assert (info.width, info.height, info.frames, info.fps, info.audio_codec) == (200, 104, 17, 17, "aac")

    plan = plan_generation(200, 104, 1, 17, 24000)  # 17 frames: 3 latent frames; last = frame 16
    per_stage = {(plan.stage1_width // 32) * (plan.stage1_height // 32), (plan.gen_width // 32) * (plan.gen_height // 32)}
    assert {tokens // (plan.latent_frames + 2) for _, _, tokens in calls} == per_stage  # both stages, 2 frames appended
    for timestep, coords, tokens in calls:
        per_frame = tokens // (plan.latent_frames + 2)
        base = plan.latent_frames * per_frame
        assert timestep.shape[-1] == tokens
        assert (timestep[:, :per_frame] == 0).all() and (timestep[:, base:] == 0).all()  # the three images
        assert (timestep[:, per_frame:base] > 0).all()  # the frames being generated
        appended = coords[0, 0, base:]  # the time axis [start, end) of the appended tokens, in seconds
        torch.testing.assert_close(appended[:per_frame], torch.tensor([[16 / 17, 17 / 17]]).expand(per_frame, 2))
        torch.testing.assert_close(appended[per_frame:], torch.tensor([[5 / 17, 6 / 17]]).expand(per_frame, 2))
        torch.testing.assert_close(coords[0, 1:, base:], coords[0, 1:, :per_frame].repeat(1, 2, 1))  # same places

    # The first image is latent frame 0 of the result (replaced, then held clean), as in image-to-video.
    pipe = engine.load(model).pipeline
    latents = []
    module = fast if model == TINY else guided
    original = module.run
    monkeypatch.setattr(module, "run", lambda *args, **kwargs: latents.append(out := original(*args, **kwargs)) or out)
    engine.generate(request(model=model, keyframes=keyframes), tmp_path / "again.mp4")
    with torch.inference_mode():
        image_latent = encode_first_frame(pipe, decode_frame_image(first, 33), plan.gen_width, plan.gen_height)
    torch.testing.assert_close(latents[0].video_latents[:, :, :1], image_latent, atol=1e-4, rtol=1e-4)
    assert latents[0].video_latents.shape[2] == plan.latent_frames


@pytest.mark.parametrize(
    "frames, problem",
    [([0, 0], "two images are given for frame 0"), ([16, LAST], "two images are given for frame 16"),
     ([17], "frame 17 is past the clip's last frame"), ([-1], "frame index from 0"), (["middle"], "first, last"),
     ([0, 4, 8, 12], "at most 3 frame images")],
)  # fmt: skip
def test_bad_keyframes_are_request_errors(engine, tmp_path, frames, problem):
    keyframes = tuple(Keyframe(solid_png((9, 9, 9)), frame) for frame in frames)
    with pytest.raises(RequestError, match=problem) as raised:
        engine.generate(request(keyframes=keyframes), tmp_path / "clip.mp4")
    assert raised.value.parameter == "keyframes"
    assert not (tmp_path / "clip.mp4").exists()


def test_first_frame_image_is_fitted_without_stretching():
    from ltx_runtime.recipes import fit_frame

    pixels = np.zeros((100, 300, 3), dtype=np.uint8)
    pixels[:, 100:200, 0] = 255  # a red square in the middle third
    fitted = fit_frame(pixels, 64, 64)
    assert fitted.shape == (1, 3, 1, 64, 64)
    assert fitted[0, 0].min() > 0.9 and fitted[0, 1:].abs().max() == 1.0  # centre crop: only the red square is left


def jpeg_with_orientation(orientation: int) -> bytes:
    image = Image.new("RGB", (120, 60), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 60))  # red on the left half
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def test_first_frame_preprocessing_follows_the_official_order():
    """EXIF orientation first, then the H.264 round trip at the source size (before any resize), as ltx-pipelines'
    media_io `decode_image` + `preprocess`; resizing comes later (`fit_frame`)."""
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf

    from ltx_runtime.recipes import decode_frame_image

    upright = decode_frame_image(jpeg_with_orientation(1), crf=0)
    rotated = decode_frame_image(jpeg_with_orientation(6), crf=0)  # 6: the camera was turned; rotate 270 degrees
    assert upright.shape == (60, 120, 3) and rotated.shape == (120, 60, 3)
    assert upright[30, 10, 0] > 200 and rotated[10, 30, 0] > 200 and rotated[110, 30, 2] > 200  # red went to the top

    source = gradient_png(401, 203)
    prepared = decode_frame_image(source, crf=33)
    pixels = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
    assert prepared.shape == (202, 400, 3)  # H.264 needs even sizes: cropped, as officially
    assert np.array_equal(prepared, apply_image_conditioning_crf(pixels, 33))
    assert not np.array_equal(prepared, pixels[:202, :400])  # really re-compressed


def test_the_first_frame_is_encoded_untiled_on_every_request(engine, tmp_path):
    """The same seed and image give the same frames on the first and the fifth request, with tiled decodes (at
    1024x576 the official 768x448 tiles apply) in between; on a GPU a tiled decode used to leave the VAE tiled, and
    the next image was then encoded in tiles."""
    image = gradient_png(1024, 576)
    big = dict(width=1024, height=576, duration=1, fps=8, audio=False)
    first = read_frames(engine.generate(request(keyframes=(Keyframe(image),), seed=21, **big), tmp_path / "1.mp4").path)
    for number in (2, 3, 4):
        engine.generate(request(seed=number, **big), tmp_path / f"{number}.mp4")
    vae = engine.load(TINY).pipeline.vae
    assert not vae.use_tiling  # the decodes' tiles did not outlive them
    vae.enable_tiling(tile_sample_min_height=448, tile_sample_min_width=768)  # as a leaked GPU decode would leave it
    try:
        fifth = read_frames(engine.generate(request(keyframes=(Keyframe(image),), seed=21, **big), tmp_path / "5.mp4").path)
    finally:
        vae.disable_tiling()
    assert np.array_equal(first, fifth)


def test_a_broken_image_is_a_request_error(engine, tmp_path):
    with pytest.raises(RequestError) as raised:
        engine.generate(request(keyframes=(Keyframe(b"not an image"),)), tmp_path / "clip.mp4")
    assert raised.value.parameter == "image"


class Interrupted(Exception):
    pass


def test_a_progress_callback_that_raises_stops_the_clip_and_leaves_nothing_behind(engine, tmp_path):
    """How the server cancels a running task: its per-step callback raises. No file is left, GPU memory (on CUDA) goes
    back to what it was, and the engine serves the next request."""
    engine.generate(request(duration=1, fps=8), tmp_path / "warm-up.mp4")  # loads the model: the baseline is resident
    cuda = engine.device.type == "cuda"
    baseline = torch.cuda.memory_allocated(engine.device) if cuda else None
    steps = []

    def interrupt_at_the_third_step(stage, fraction):
        if stage == "stage_1" and fraction > 0:  # one report per denoising step
            steps.append(fraction)
        if len(steps) == 3:
            raise Interrupted

    output = tmp_path / "cancelled.mp4"
    with pytest.raises(Interrupted):
        engine.generate(request(), output, progress=interrupt_at_the_third_step)
    assert len(steps) == 3 and steps == sorted(steps) and not output.exists()
    if cuda:
        from ltx_runtime.memory import free_cached_memory

        free_cached_memory()
        assert torch.cuda.memory_allocated(engine.device) == baseline
    result = engine.generate(request(duration=1, fps=8), tmp_path / "next.mp4")
    assert probe(result.path).frames == 8


def test_guided_steps_set_the_stage_1_progress_and_change_the_clip(engine, tmp_path):
    """A request's steps and CFG scale reach the guided recipe: 2 steps report 2 stage-1 steps, and each setting
    gives other frames than the official defaults would."""
    guided = dict(model="ltx-runtime:tiny-ltx23@1", width=64, height=64, fps=9, audio=False)
    reports = []
    engine.generate(request(**guided, steps=2), tmp_path / "two.mp4", progress=lambda stage, done: reports.append((stage, done)))
    assert [done for stage, done in reports if stage == "stage_1"] == [0.5, 1.0]
    engine.generate(request(**guided, steps=2, guidance_scale=9.0), tmp_path / "cfg.mp4")
    engine.generate(request(**guided, steps=3), tmp_path / "three.mp4")
    two, cfg, three = (read_frames(tmp_path / f"{name}.mp4") for name in ("two", "cfg", "three"))
    assert not np.array_equal(two, cfg) and not np.array_equal(two, three)
