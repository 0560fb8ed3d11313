"""Audio-to-video (`inputs.audio`, GenerationRequest.audio_input) on tiny weights: the input audio is encoded by the
audio VAE and held fixed while the video is denoised (ltx-pipelines `A2VidPipelineTwoStage`), and the output's audio
track is the input audio trimmed or padded to the clip."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from ltx_runtime.audio_input import AudioInputError, decode_audio, fit_to
from ltx_runtime.catalog import MODELS, get_model
from ltx_runtime.media import ffmpeg_executable
from ltx_runtime.recipes import encode_soundtrack
from ltx_runtime.request import LAST, GenerationRequest, Keyframe, RequestError, validate_request

from conftest import probe, read_frames
from support.audio import snr_db, tone

A2V_MODEL = "ltx-runtime:tiny-ltx23@1"


def output_audio(path, rate: int) -> np.ndarray:
    """The output file's audio track decoded by the real ffmpeg, float32 stereo [samples, 2]."""
    return decode_audio(path.read_bytes(), rate)


def request(**fields) -> GenerationRequest:
    values = dict(model=A2V_MODEL, prompt="a drummer plays to the beat", width=128, height=64, duration=1, fps=16,
                  audio=True, seed=7, steps=2)  # fmt: skip
    return GenerationRequest(**{**values, **fields})


def test_the_catalog_names_the_guided_models_for_audio_to_video():
    """The official A2V pipeline is the guided two-stage one: LTX-2 Pro, LTX-2 and LTX-2.3 (and their tiny stand-ins)
    take input audio, the Fast models and LTX-2.5 do not."""
    takes = {model_id for model_id, spec in MODELS.items() if spec.audio_to_video}
    assert {"lightricks:ltx@2.3", "lightricks:ltx@2", "lightricks:2@0", A2V_MODEL, "ltx-runtime:tiny-pro@1"} <= takes
    assert not takes & {"lightricks:ltx@2.3-fast", "lightricks:2@1", "lightricks:ltx@2.5-pro", "ltx-runtime:tiny@1"}


@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a", "ogg"])
def test_common_formats_decode_to_stereo_at_the_asked_rate(fmt):
    samples = decode_audio(tone(1.5, fmt=fmt), 24000)
    assert samples.dtype == np.float32 and samples.shape[1] == 2
    assert abs(len(samples) - 36000) <= 2400  # lossy codecs may pad up to a frame; never a different length
    left = samples[2400:33600, 0]  # the 440 Hz sine, whatever the codec's delay
    spectrum = np.abs(np.fft.rfft(left))
    assert abs(np.argmax(spectrum) * 24000 / len(left) - 440) < 5


def test_mono_audio_goes_to_both_channels():
    mono = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=300:d=1",
         "-ac", "1", "-f", "wav", "pipe:1"], capture_output=True, check=True).stdout  # fmt: skip
    samples = decode_audio(mono, 16000)
    assert samples.shape == (16000, 2) and np.allclose(samples[:, 0], samples[:, 1]) and np.abs(samples).max() > 0.05


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"not audio at all " * 50, "not readable"),
        (b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.wav\n", "not readable"),  # a playlist: never followed
        (b"RIFF" + b"\0" * 11 * 1024 * 1024, "larger than"),
    ],
)
def test_bad_audio_is_refused_with_a_reason(data, message):
    with pytest.raises(AudioInputError, match=message):
        decode_audio(data, 16000)


def test_too_long_audio_is_refused():
    with pytest.raises(AudioInputError, match="longer than 60 s"):
        decode_audio(tone(61, rate=8000), 8000)


def test_audio_without_a_video_stream_only_and_no_samples_is_refused():
    """A video file with no audio stream holds no audio samples."""
    silent_video = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=0.5",
         "-c:v", "libx264", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "pipe:1"],
        capture_output=True, check=True).stdout  # fmt: skip
    with pytest.raises(AudioInputError):
        decode_audio(silent_video, 16000)


def test_fit_to_trims_and_pads_with_silence():
    samples = np.ones((10, 2), np.float32)
    assert fit_to(samples, 4).shape == (4, 2)
    padded = fit_to(samples, 15)
    assert padded.shape == (15, 2) and padded[10:].sum() == 0 and padded[:10].sum() == 20


@pytest.mark.parametrize(
    "fields, says",
    [
        (dict(model="ltx-runtime:tiny@1", steps=None), "does not generate to a given audio"),
        (dict(model="ltx-runtime:tiny-ltx23-fast@1", steps=None), "does not generate to a given audio"),
        (dict(audio=False), "audio switched off"),
        (dict(audio_input=b"garbage" * 100), "not readable"),
        (dict(audio_input=b""), "empty"),
    ],
)
def test_bad_audio_requests_name_audio_input(fields, says):
    fields.setdefault("audio_input", tone(1))
    with pytest.raises(RequestError, match=says) as raised:
        validate_request(request(**fields))
    assert raised.value.parameter == "audio_input"


@pytest.mark.slow
def test_the_input_audio_is_held_fixed_and_becomes_the_clip_audio(engine, tmp_path, monkeypatch):
    """Every transformer pass of both stages sees the encoded input audio, clean, at audio timestep 0 and sigma 0
    (ltx-pipelines v1.2.0's frozen modality: also the video's audio-to-video cross-attention gate); the recipe's
    audio latents are that encoding; the file's audio track is the input (trimmed to the clip) within AAC's loss."""
    from ltx_runtime.recipes import guided

    spec = get_model(A2V_MODEL)
    data = tone(1.6, rate=44100)  # longer than the 1 s clip: trimmed
    components = engine.load(A2V_MODEL)
    transformer = components.pipeline.transformer
    seen, gates = [], []

    def record(module, args, kwargs, output):
        seen.append((kwargs["audio_hidden_states"].detach().clone(), kwargs["audio_timestep"].detach().clone(),
                     kwargs["audio_sigma"].detach().clone(), kwargs["sigma"].detach().clone()))

    outputs = []
    real_run = guided.run
    monkeypatch.setattr(guided, "run", lambda *a, **k: outputs.append(real_run(*a, **k)) or outputs[-1])
    handles = [transformer.register_forward_hook(record, with_kwargs=True),  # sees the inputs audio_held set
               transformer.av_cross_attn_video_a2v_gate.register_forward_hook(
                   lambda module, args, output: gates.append(args[0].detach().clone()))]  # fmt: skip
    try:
        result = engine.generate(request(audio_input=data), tmp_path / "a2v.mp4")
    finally:
        for handle in handles:
            handle.remove()

    pipeline = components.pipeline
    rate = pipeline.audio_vae.config.sample_rate
    from ltx_runtime.geometry import plan_generation
    from ltx_runtime.recipes import soundtrack_latent_frames

    plan = plan_generation(128, 64, 1, 16, spec.audio_sample_rate)
    frames = soundtrack_latent_frames(pipeline, plan)
    with torch.inference_mode():
        encoded = encode_soundtrack(pipeline, fit_to(decode_audio(data, rate), round(plan.gen_frames / 16 * rate)), frames)
    assert encoded.shape[2] == frames
    assert torch.equal(outputs[0].audio_latents, encoded)  # the recipe's audio: the encoding, untouched
    packed = pipeline._normalize_audio_latents(
        pipeline._pack_audio_latents(encoded), pipeline.audio_vae.latents_mean, pipeline.audio_vae.latents_std
    )
    assert len(seen) >= 2 * 2 + 3  # stage 1 (2 steps, with its guidance passes) and the 3 stage-2 steps
    for audio_tokens, audio_timestep, audio_sigma, video_sigma in seen:
        assert torch.equal(audio_tokens, packed.expand_as(audio_tokens).to(audio_tokens.dtype))
        assert torch.count_nonzero(audio_timestep) == 0 and torch.count_nonzero(audio_sigma) == 0
        assert torch.all(video_sigma > 0)  # the video's own sigma stays the step's
    assert len(gates) == len(seen) and all(torch.count_nonzero(gate) == 0 for gate in gates)

    facts = probe(result.path)
    assert (facts.width, facts.height, facts.frames, facts.fps) == (128, 64, 16, 16)
    assert facts.audio_codec == "aac" and facts.audio_rate == spec.audio_sample_rate and facts.audio_channels == 2
    assert abs(facts.audio_duration - 1.0) < 0.05
    track = output_audio(result.path, spec.audio_sample_rate)
    expected = decode_audio(data, spec.audio_sample_rate)[: spec.audio_sample_rate]
    assert snr_db(expected[2000:46000], track[2000:46000]) > 20  # AAC at 192 kb/s; a generated track is near 0 dB


@pytest.mark.slow
def test_keyframes_and_input_audio_together(engine, tmp_path):
    """A first and a last frame with an input audio: every pass holds the audio clean (audio timestep 0) and the
    images' tokens clean (the first latent frame and the appended one at video timestep 0), and the clip has the
    asked shape with the input as its audio track."""
    import io

    from PIL import Image

    def png(colour) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (256, 128), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    spec = get_model(A2V_MODEL)
    transformer = engine.load(A2V_MODEL).pipeline.transformer
    calls = []
    handle = transformer.register_forward_hook(  # a forward hook: it sees the inputs audio_held's pre-hook set
        lambda module, args, kwargs, output: calls.append((kwargs["timestep"].clone(), kwargs["audio_timestep"].clone(),
                                                           kwargs["hidden_states"].shape[1])), with_kwargs=True)  # fmt: skip
    data = tone(1, rate=48000)
    keyframes = (Keyframe(png((200, 30, 30)), 0), Keyframe(png((30, 30, 200)), LAST))
    try:
        result = engine.generate(request(audio_input=data, keyframes=keyframes), tmp_path / "both.mp4")
    finally:
        handle.remove()
    from ltx_runtime.geometry import plan_generation

    plan = plan_generation(128, 64, 1, 16, spec.audio_sample_rate)
    assert len(calls) >= 2 * 2 + 3  # stage 1 (2 steps, with its guidance passes) and the 3 stage-2 steps
    for timestep, audio_timestep, tokens in calls:
        per_frame = tokens // (plan.latent_frames + 1)  # one appended latent frame: the last image
        assert torch.count_nonzero(audio_timestep) == 0
        assert (timestep[:, :per_frame] == 0).all() and (timestep[:, plan.latent_frames * per_frame:] == 0).all()
        assert (timestep[:, per_frame : plan.latent_frames * per_frame] > 0).all()
    facts = probe(result.path)
    assert (facts.width, facts.height, facts.frames, facts.fps) == (128, 64, 16, 16)
    assert facts.audio_rate == spec.audio_sample_rate and abs(facts.audio_duration - 1.0) < 0.05
    expected = decode_audio(data, spec.audio_sample_rate)[: spec.audio_sample_rate]
    track = output_audio(result.path, spec.audio_sample_rate)
    assert snr_db(expected[2000:46000], track[2000:46000]) > 20


@pytest.mark.slow
def test_short_input_audio_is_padded_with_silence(engine, tmp_path):
    spec = get_model(A2V_MODEL)
    result = engine.generate(request(audio_input=tone(0.5, rate=48000), duration=2, steps=2), tmp_path / "pad.mp4")
    facts = probe(result.path)
    assert facts.frames == 32 and abs(facts.audio_duration - 2.0) < 0.05
    track = output_audio(result.path, spec.audio_sample_rate)
    rms = lambda part: float(np.sqrt(np.mean(part**2)))  # noqa: E731
    assert rms(track[4800:19200]) > 0.2 and rms(track[33600:86400]) < 0.005  # the tone, then silence


@pytest.mark.slow
def test_the_clip_depends_on_the_input_audio(engine, tmp_path):
    """The video is generated to the audio: another soundtrack, same seed and prompt, gives other frames."""

    first = engine.generate(request(audio_input=tone(1, frequency=440)), tmp_path / "one.mp4")
    second = engine.generate(request(audio_input=tone(1, frequency=90)), tmp_path / "two.mp4")
    again = engine.generate(request(audio_input=tone(1, frequency=440)), tmp_path / "three.mp4")
    assert np.array_equal(read_frames(first.path), read_frames(again.path))
    assert not np.array_equal(read_frames(first.path), read_frames(second.path))


@pytest.mark.slow
def test_the_cli_generates_to_an_audio_file(tiny_root, tmp_path):
    """`ltx-runtime generate --audio-input FILE`, run as a user runs it: the clip has the file's audio; a model without
    audio-to-video, or the audio switched off, is refused naming the option, and nothing is written."""
    import os
    import sys

    env = dict(os.environ, LTX_TINY_DIR=str(tiny_root))
    song = tmp_path / "song.mp3"
    song.write_bytes(tone(2, fmt="mp3"))
    out = tmp_path / "clip.mp4"
    base = [sys.executable, "-m", "ltx_runtime", "generate", "--weights", "tiny", "-p", "a singer", "--width", "96",
            "--height", "64", "--duration", "1", "--fps", "12", "--steps", "2", "--audio-input", str(song)]  # fmt: skip
    done = subprocess.run(base + ["-m", "ltx-runtime:tiny-pro@1", "-o", str(out)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    facts = probe(out)
    assert (facts.width, facts.height, facts.frames, facts.audio_rate) == (96, 64, 12, 24000)  # LTX-2: 24 kHz
    assert "the video is noise" in done.stderr  # the audio is the input's, not noise
    expected = decode_audio(song.read_bytes(), 24000)[:24000]
    assert snr_db(expected[1200:22800], output_audio(out, 24000)[1200:22800]) > 15

    for extra, says in ((["-m", "ltx-runtime:tiny@1"], "does not generate to a given audio"),
                        (["-m", A2V_MODEL, "--no-audio"], "audio switched off")):  # fmt: skip
        refused = subprocess.run(base + extra + ["-o", str(tmp_path / "no.mp4")], env=env, capture_output=True,
                                 text=True, timeout=600)  # fmt: skip
        assert refused.returncode == 2 and "--audio-input: " in refused.stderr and says in refused.stderr
        assert not (tmp_path / "no.mp4").exists()
