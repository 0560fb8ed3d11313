"""Encoding through the real ffmpeg binary, checked the way a user would: codecs, size, frames, fps, duration, audio."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from conftest import colour_tags, probe, read_frames
from ltx_runtime.media import QUEUED_CHUNKS, EncodingError, OutputFormat, crf_for_quality, encode_clip
from support.processes import ffmpeg_child

EXPECTED = {
    OutputFormat.MP4: ("h264", "aac"),
    OutputFormat.MOV: ("h264", "aac"),
    OutputFormat.WEBM: ("vp9", "opus"),
}


def gradient_chunks(frames, height, width, chunk=7):
    """A moving gradient, handed over in chunks as the decoder does."""
    y, x = np.mgrid[0:height, 0:width]
    for start in range(0, frames, chunk):
        block = [
            np.stack([(x * 255 // width + 5 * t) % 256, (y * 255 // height) % 256, np.full_like(x, 128)], axis=-1)
            for t in range(start, min(start + chunk, frames))
        ]
        yield np.asarray(block, dtype=np.uint8)


def sine(seconds, rate):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)


@pytest.mark.parametrize("output_format", list(OutputFormat))
@pytest.mark.parametrize("rate", [24000, 48000])
def test_each_format_with_audio(tmp_path, output_format, rate):
    path = tmp_path / f"clip.{output_format.value}"
    encode_clip(gradient_chunks(50, 72, 128), sine(2, rate), width=128, height=72, fps=25, sample_rate=rate,
                output_path=path, output_format=output_format, x264_preset="ultrafast")
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == EXPECTED[output_format]
    assert (info.width, info.height, info.pix_fmt) == (128, 72, "yuv420p")
    assert info.frames == 50 and info.fps == 25
    assert info.duration == pytest.approx(2.0, abs=0.03)
    assert info.audio_channels == 2
    # Opus always decodes at 48 kHz; the others keep the vocoder's rate.
    assert info.audio_rate == (48000 if output_format is OutputFormat.WEBM else rate)
    assert info.audio_duration == pytest.approx(2.0, abs=0.03)


@pytest.mark.parametrize("output_format", list(OutputFormat))
def test_no_audio_means_no_audio_stream(tmp_path, output_format):
    path = tmp_path / f"clip.{output_format.value}"
    encode_clip(gradient_chunks(10, 64, 64), None, width=64, height=64, fps=10, sample_rate=24000,
                output_path=path, output_format=output_format, x264_preset="ultrafast")
    info = probe(path)
    assert info.audio_codec is None
    assert info.frames == 10 and info.fps == 10


def test_mp4_is_faststart(tmp_path):
    path = tmp_path / "clip.mp4"
    encode_clip(gradient_chunks(10, 64, 64), sine(1, 24000), width=64, height=64, fps=10, sample_rate=24000,
                output_path=path, output_format=OutputFormat.MP4)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_pixels_survive_encoding(tmp_path):
    path = tmp_path / "clip.mp4"
    original = np.concatenate(list(gradient_chunks(12, 64, 96)))
    encode_clip(gradient_chunks(12, 64, 96), None, width=96, height=64, fps=12, sample_rate=24000,
                output_path=path, output_format=OutputFormat.MP4, quality=99)
    decoded = read_frames(path)
    assert decoded.shape == original.shape
    assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 3


def test_higher_quality_means_lower_crf_and_bigger_files(tmp_path):
    for output_format in OutputFormat:
        crfs = [crf_for_quality(output_format, q) for q in (20, 50, 95, 99)]
        assert crfs == sorted(crfs, reverse=True)
    assert (crf_for_quality(OutputFormat.MP4, 20), crf_for_quality(OutputFormat.MP4, 99)) == (40, 15)
    assert crf_for_quality(OutputFormat.MP4, 95) == 16  # the default quality (docs/performance.md, "The encoder")
    assert (crf_for_quality(OutputFormat.WEBM, 20), crf_for_quality(OutputFormat.WEBM, 99)) == (50, 15)
    with pytest.raises(ValueError):
        crf_for_quality(OutputFormat.MP4, 19)
    sizes = {}
    for quality in (20, 99):
        path = tmp_path / f"q{quality}.mp4"
        encode_clip(gradient_chunks(20, 64, 64), None, width=64, height=64, fps=10, sample_rate=24000,
                    output_path=path, output_format=OutputFormat.MP4, quality=quality)
        sizes[quality] = path.stat().st_size
    assert sizes[99] > sizes[20]


def test_wrong_frame_shape_is_an_encoding_error_and_leaves_no_file(tmp_path):
    with pytest.raises(EncodingError, match="does not match"):
        encode_clip(gradient_chunks(4, 64, 64), None, width=64, height=48, fps=10, sample_rate=24000,
                    output_path=tmp_path / "x.mp4", output_format=OutputFormat.MP4)
    assert not (tmp_path / "x.mp4").exists()


def test_a_failing_frame_source_leaves_no_file(tmp_path):
    def failing_chunks():
        yield from gradient_chunks(8, 64, 64)
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="decoder crashed"):
        encode_clip(failing_chunks(), None, width=64, height=64, fps=10, sample_rate=24000,
                    output_path=tmp_path / "x.mp4", output_format=OutputFormat.MP4)
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("output_format", list(OutputFormat))
def test_colour_is_bt709_limited_range_and_tagged(tmp_path, output_format):
    """As the official pipelines write it: BT.709 matrix, limited range, and the stream says so (what ffprobe shows
    as `yuv420p(tv, bt709)`). Pure green has luma 16 + 219 x 0.7152 = 173 with BT.709; BT.601 would give 145."""
    import av

    path = tmp_path / f"clip.{output_format.value}"
    green = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    green[..., 1] = 255
    encode_clip([green], None, width=64, height=64, fps=4, sample_rate=24000, output_path=path,
                output_format=output_format, quality=99)  # fmt: skip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        bt709, limited = 1, 1  # AVCOL_PRI/TRC/SPC_BT709, AVCOL_RANGE_MPEG
        assert (context.colorspace, context.color_primaries, context.color_trc) == (bt709, bt709, bt709)
        assert context.color_range == limited
        luma = next(container.decode(stream)).to_ndarray(format="yuv420p")[:64]
    assert abs(luma.mean() - 173) < 2


def test_the_decode_runs_on_while_ffmpeg_is_stalled(tmp_path):
    """The frames are written by a thread of their own through a bounded queue: with ffmpeg stopped (SIGSTOP), the
    frame source still gets to hand over QUEUED_CHUNKS more chunks (each far bigger than a pipe's buffer) at once.
    Writing on the caller's thread, the second chunk would wait for ffmpeg (here: until the timer resumes it)."""
    chunk = np.full((4, 256, 256, 3), 100, dtype=np.uint8)  # 786 KB, more than a pipe holds
    handed_over = {}

    def frames():
        yield chunk
        encoder = ffmpeg_child()
        os.kill(encoder, signal.SIGSTOP)
        resume = threading.Timer(3.0, os.kill, (encoder, signal.SIGCONT))
        resume.start()
        started = time.monotonic()
        for _ in range(QUEUED_CHUNKS):  # the first chunk is stuck in the pipe; these wait in the queue
            yield chunk
        handed_over["seconds"] = time.monotonic() - started
        resume.join()
        yield chunk

    path = tmp_path / "clip.mp4"
    encode_clip(frames(), None, width=256, height=256, fps=10, sample_rate=24000, output_path=path,
                output_format=OutputFormat.MP4, x264_preset="ultrafast")  # fmt: skip
    assert handed_over["seconds"] < 1.5
    assert probe(path).frames == 4 * (QUEUED_CHUNKS + 2)


def test_an_encoder_killed_mid_clip_is_an_encoding_error_and_leaves_no_file(tmp_path):
    """ffmpeg dies while chunks are still coming: the writer thread stops, the frame source is not drained into a
    dead pipe forever, and the caller gets ffmpeg's exit code (what the worker reports as the encoder's failure)."""
    taken = []

    def frames():
        for number, chunk in enumerate(gradient_chunks(200, 128, 128, chunk=4)):
            if number == 2:
                os.kill(ffmpeg_child(), signal.SIGKILL)
            taken.append(number)
            yield chunk

    with pytest.raises(EncodingError, match=r"ffmpeg failed \(exit -9\)"):
        encode_clip(frames(), None, width=128, height=128, fps=10, sample_rate=24000,
                    output_path=tmp_path / "x.mp4", output_format=OutputFormat.MP4)  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()
    assert len(taken) < 50  # it stopped taking frames soon after ffmpeg died


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


@pytest.mark.parametrize("output_format", list(OutputFormat))
def test_yuv420p_chunks_make_the_file_rgb24_chunks_make(tmp_path, output_format):
    """The gpu_colour path: frames converted before ffmpeg (colour.rgb_to_yuv420p) are only tagged there; the file
    has the rgb24 path's size, frames, pixel format and BT.709 limited-range tags, and decodes to the same pixels
    within the encoder's loss (the conversions differ by at most a level: tests/engine/test_colour.py)."""
    import torch

    from ltx_runtime.colour import rgb_to_yuv420p

    paths = {name: tmp_path / f"{name}.{output_format.value}" for name in ("rgb24", "yuv420p")}
    encode_clip(gradient_chunks(14, 72, 128), None, width=128, height=72, fps=10, sample_rate=24000,
                output_path=paths["rgb24"], output_format=output_format, quality=99)  # fmt: skip
    yuv = (rgb_to_yuv420p(torch.from_numpy(chunk).permute(3, 0, 1, 2)).numpy() for chunk in gradient_chunks(14, 72, 128))
    encode_clip(yuv, None, width=128, height=72, fps=10, sample_rate=24000, output_path=paths["yuv420p"],
                output_format=output_format, quality=99, pixel_format="yuv420p")  # fmt: skip
    rgb_info, yuv_info = probe(paths["rgb24"]), probe(paths["yuv420p"])
    assert (yuv_info.width, yuv_info.height, yuv_info.frames, yuv_info.pix_fmt) == (128, 72, 14, "yuv420p")
    assert (rgb_info.width, rgb_info.height, rgb_info.frames, rgb_info.pix_fmt) == (128, 72, 14, "yuv420p")
    bt709, limited = 1, 1
    assert colour_tags(paths["yuv420p"]) == colour_tags(paths["rgb24"]) == (bt709, bt709, bt709, limited)
    original = np.concatenate(list(gradient_chunks(14, 72, 128)))
    from_rgb, from_yuv = read_frames(paths["rgb24"]), read_frames(paths["yuv420p"])
    assert psnr(from_yuv, from_rgb) > 40
    assert abs(psnr(from_yuv, original) - psnr(from_rgb, original)) < 0.5


def test_yuv420p_chunks_of_another_size_or_an_odd_size_are_an_encoding_error(tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises(EncodingError, match=r"does not match \(13824,\)"):
        encode_clip([np.zeros((2, 64 * 64 * 3 // 2), np.uint8)], None, width=128, height=72, fps=10,
                    sample_rate=24000, output_path=path, output_format=OutputFormat.MP4, pixel_format="yuv420p")  # fmt: skip
    with pytest.raises(EncodingError, match="even width and height, got 127x72"):
        encode_clip([], None, width=127, height=72, fps=10, sample_rate=24000, output_path=path,
                    output_format=OutputFormat.MP4, pixel_format="yuv420p")  # fmt: skip
    assert not path.exists()
