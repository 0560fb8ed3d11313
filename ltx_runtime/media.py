"""Frames + audio -> MP4 / WEBM / MOV through a real ffmpeg (the imageio-ffmpeg binary).

Frames are written to ffmpeg's stdin as raw rgb24 (or yuv420p, converted on the GPU: the `gpu_colour` lever,
colour.py), chunk by chunk, by a thread of their own fed through a bounded
queue (QUEUED_CHUNKS), which also starts ffmpeg: the caller, the VAE decode, hands a chunk over and goes on with the next at once, so encoding
overlaps decoding, the decode never waits on the pipe while the queue has room, and a clip is never held whole in
memory. Audio (small: 10 s of 48 kHz stereo is 4 MB) is
written to a temporary raw float32 file that ffmpeg reads as a second input.

| format | video | audio | container flags |
|---|---|---|---|
| MP4  | H.264 (libx264), yuv420p | AAC-LC | `+faststart` (index first, so players start before the end arrives) |
| MOV  | H.264 (libx264), yuv420p | AAC-LC | |
| WEBM | VP9 (libvpx-vp9), yuv420p | Opus | |

Colour as the official pipelines write it: RGB -> YUV with the BT.709 matrix, limited ("tv") range, and the stream
tagged BT.709 (matrix, primaries, transfer) and limited range, so players do not guess (ffmpeg's default conversion
is BT.601 and untagged). rgb24 input is converted by ffmpeg's swscale (BT709_LIMITED); yuv420p input was converted
the same way already (colour.rgb_to_yuv420p) and is only tagged (BT709_TAGS), so the file says the same either way.
yuv420p needs an even width and height (so does libx264 from rgb24; every catalog size is a multiple of 8).

`outputQuality` (20-99, the contract's range; 95 by default) maps linearly onto the encoder's constant-quality scale:
x264 CRF from 40 (quality 20) to 15 (quality 99), VP9 CRF from 50 to 15. Quality 95 gives x264 CRF 16 with the
`veryfast` preset (about 2.4 dB above Lightricks' writer, veryfast CRF 19, at its speed: scripts/encoder_bench.py,
docs/performance.md) and VP9 CRF 17. Audio bitrate is fixed: 192 kb/s AAC, 160 kb/s Opus.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

QUALITY_MIN, QUALITY_MAX, QUALITY_DEFAULT = 20, 99, 95
X264_PRESET_DEFAULT = "veryfast"
"""As fast as Lightricks' own writer (ltx-pipelines media_io: veryfast, CRF 19); docs/performance.md has the measurements."""
BT709_TAGS = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
"""ffmpeg filter: tag the frames BT.709, limited range (the encoders copy the tags)."""
BT709_LIMITED = f"scale=out_color_matrix=bt709:out_range=tv,{BT709_TAGS}"
"""ffmpeg filters: convert with the BT.709 matrix to limited range, then tag the frames."""
PixelFormat = Literal["rgb24", "yuv420p"]
"""What encode_clip's chunks hold: rgb24 [f, H, W, 3] or planar yuv420p [f, H * W * 3 / 2], uint8."""


class OutputFormat(str, Enum):
    MP4 = "mp4"
    WEBM = "webm"
    MOV = "mov"

    @property
    def content_type(self) -> str:
        return {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime"}[self.value]


@dataclass(frozen=True)
class _Codecs:
    video: str
    audio: str
    crf_at_min_quality: int
    crf_at_max_quality: int
    audio_bitrate: str
    extra: tuple[str, ...]


_CODECS = {
    OutputFormat.MP4: _Codecs("libx264", "aac", 40, 15, "192k", ("-movflags", "+faststart")),
    OutputFormat.MOV: _Codecs("libx264", "aac", 40, 15, "192k", ()),
    # -b:v 0 makes VP9 a pure constant-quality encode; row-mt spreads rows over the cores; cpu-used 4 trades a
    # little compression for several times the speed of libvpx's default (0, the slowest).
    OutputFormat.WEBM: _Codecs(
        "libvpx-vp9", "libopus", 50, 15, "160k", ("-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "4")
    ),
}


class EncodingError(RuntimeError):
    pass


def crf_for_quality(output_format: OutputFormat, quality: int) -> int:
    if not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise ValueError(f"quality must be between {QUALITY_MIN} and {QUALITY_MAX}, got {quality}")
    codecs = _CODECS[output_format]
    span = codecs.crf_at_min_quality - codecs.crf_at_max_quality
    return round(codecs.crf_at_min_quality - (quality - QUALITY_MIN) * span / (QUALITY_MAX - QUALITY_MIN))


def ffmpeg_executable() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encode_clip(
    frames: Iterable[np.ndarray],
    audio: np.ndarray | None,
    *,
    width: int,
    height: int,
    fps: int,
    sample_rate: int,
    output_path: Path,
    output_format: OutputFormat,
    quality: int = QUALITY_DEFAULT,
    x264_preset: str = X264_PRESET_DEFAULT,
    crf: int | None = None,
    pixel_format: PixelFormat = "rgb24",
) -> None:
    """Encode uint8 frame chunks in `pixel_format` and optional float32 stereo audio [samples, 2] into `output_path`.
    `crf` overrides the one `quality` maps to (scripts/encoder_bench.py measures the scale)."""
    codecs = _CODECS[output_format]
    crf = crf_for_quality(output_format, quality) if crf is None else crf
    if pixel_format == "yuv420p" and (width % 2 or height % 2):
        raise EncodingError(f"yuv420p frames need an even width and height, got {width}x{height}")
    frame_shape = (height, width, 3) if pixel_format == "rgb24" else (height * width * 3 // 2,)
    colour = BT709_LIMITED if pixel_format == "rgb24" else BT709_TAGS
    with tempfile.TemporaryDirectory(prefix="ltx-encode-") as scratch:
        command = [
            ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", pixel_format, "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0",
        ]  # fmt: skip
        if audio is not None:
            audio_file = Path(scratch) / "audio.f32"
            np.ascontiguousarray(audio, dtype="<f4").tofile(audio_file)
            command += ["-f", "f32le", "-ar", str(sample_rate), "-ac", "2", "-i", str(audio_file)]
            command += ["-map", "0:v", "-map", "1:a", "-c:a", codecs.audio, "-b:a", codecs.audio_bitrate]
        else:
            command += ["-map", "0:v"]
        command += ["-vf", colour, "-c:v", codecs.video, "-crf", str(crf), "-pix_fmt", "yuv420p", *codecs.extra]
        if codecs.video == "libx264":
            command += ["-preset", x264_preset]
        command += ["-f", output_format.value, str(output_path)]
        try:
            _run_ffmpeg(command, frames, frame_shape)
        except BaseException:
            Path(output_path).unlink(missing_ok=True)  # never leave a truncated file behind
            raise


def _die_with_parent() -> None:
    """In the ffmpeg child (Linux): SIGKILL it when the process that feeds it dies, so that a killed worker leaves no
    encoder finishing a partial file behind its back."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


QUEUED_CHUNKS = 2
"""Decoded chunks that may wait for ffmpeg. The decode hands a chunk over and goes on with the next tile at once;
it waits only when this many are still queued (the encoder is behind). A chunk is at most 81 frames (0.5 GB at
1080p, 2 GB at 4K), so host memory stays bounded at a few chunks."""
_END = None


class _Encoder(threading.Thread):
    """Starts ffmpeg and writes the queued frame chunks into its stdin, on a thread of its own: the caller (the VAE
    decode) never waits on the pipe while the queue has room, nor on starting ffmpeg (a fork of a process holding
    tens of GB of host memory takes a while). The thread lives as long as ffmpeg: PR_SET_PDEATHSIG fires when the
    thread that started the child ends. A broken pipe (ffmpeg died) stops the writing; `returncode` says why."""

    def __init__(self, command: list[str], stderr):
        super().__init__(name="ffmpeg-encoder", daemon=True)
        self.command, self.stderr = command, stderr
        self.chunks: queue.Queue = queue.Queue(maxsize=QUEUED_CHUNKS)
        self.started_ffmpeg = threading.Event()
        self.process: subprocess.Popen | None = None
        self.spawn_error: OSError | None = None

    def run(self) -> None:
        try:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stderr=self.stderr,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip
        except OSError as error:
            self.spawn_error = error
            return
        finally:
            self.started_ffmpeg.set()
        try:
            while (chunk := self.chunks.get()) is not _END:
                self.process.stdin.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg died (or was killed on the caller's error); its exit code says why
        finally:
            self.process.wait()

    def put(self, chunk: np.ndarray | None) -> bool:
        """Queue a chunk (or the end); False when the thread has stopped (ffmpeg is gone or never started)."""
        while self.is_alive():
            try:
                self.chunks.put(chunk, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def abandon(self) -> None:
        """On the caller's error: kill ffmpeg, drop what is queued so that the thread, if waiting for a chunk, takes
        the end, and wait for it."""
        self.started_ffmpeg.wait()
        if self.process is not None:
            self.process.kill()
        while True:
            try:
                self.chunks.get_nowait()
            except queue.Empty:
                break
        self.chunks.put(_END)
        self.join()


def _run_ffmpeg(command: list[str], frames: Iterable[np.ndarray], frame_shape: tuple[int, ...]) -> None:
    stderr = tempfile.TemporaryFile()
    encoder = _Encoder(command, stderr)
    encoder.start()
    try:
        for chunk in frames:
            if chunk.dtype != np.uint8 or chunk.shape[1:] != frame_shape:
                raise EncodingError(f"frame chunk {chunk.shape} {chunk.dtype} does not match {frame_shape} uint8")
            if not encoder.put(chunk):
                break  # ffmpeg died; its exit code and stderr below say why
        encoder.put(_END)
        encoder.join()
    except BaseException:
        encoder.abandon()
        raise
    if encoder.spawn_error is not None:
        raise encoder.spawn_error
    if encoder.process.returncode != 0:
        stderr.seek(0)
        message = stderr.read().decode(errors="replace").strip()
        raise EncodingError(f"ffmpeg failed (exit {encoder.process.returncode}): {message[-2000:]}")
