"""An audio file a clip is generated to (audio-to-video), decoded by the real ffmpeg; torch-free.

Any common format is read (WAV, MP3, M4A/AAC, Ogg Vorbis/Opus, FLAC, Matroska/WebM audio): ffmpeg decodes it to
float32 stereo at the rate asked (mono is copied to both channels; more channels are downmixed) and resamples it with
its own resampler. Hostile files stay contained: only those demuxers may open it (no playlists or concat lists that
would make ffmpeg read other files or URLs), only the local file protocol, a time limit, and at most
MAX_AUDIO_SECONDS are decoded.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .media import ffmpeg_executable

MAX_AUDIO_BYTES = 10 * 1024 * 1024
"""The largest audio file taken (the guarded fetcher's own limit for a URL; 60 s of 48 kHz 16-bit stereo WAV is
11 MB, of 192 kb/s AAC 1.4 MB)."""
MAX_AUDIO_SECONDS = 60.0
"""The longest audio taken: three times the longest clip (20 s). Longer input is refused rather than decoded."""
DEMUXERS = "wav,mp3,mov,ogg,flac,aac,matroska"
"""ffmpeg's demuxers for the formats taken ("mov" reads MP4 and M4A, "matroska" WebM)."""
DECODE_TIMEOUT = 30.0


class AudioInputError(ValueError):
    """The audio cannot be used: unreadable, empty or too long (the message says which)."""


def decode_audio(data: bytes, sample_rate: int) -> np.ndarray:
    """The audio file `data` as float32 stereo samples [samples, 2] at `sample_rate`."""
    if not data:
        raise AudioInputError("the audio file is empty")
    if len(data) > MAX_AUDIO_BYTES:
        raise AudioInputError(f"the audio file is larger than {MAX_AUDIO_BYTES} bytes")
    with tempfile.TemporaryDirectory(prefix="ltx-audio-") as scratch:
        source = Path(scratch) / "input"  # a file, not a pipe: MP4/M4A may keep their index at the end
        source.write_bytes(data)
        command = [
            ffmpeg_executable(), "-nostdin", "-hide_banner", "-loglevel", "error",
            "-format_whitelist", DEMUXERS, "-protocol_whitelist", "file", "-i", str(source),
            "-vn", "-sn", "-dn", "-ac", "2", "-ar", str(sample_rate), "-t", str(MAX_AUDIO_SECONDS + 1.0),
            "-f", "f32le", "pipe:1",
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, timeout=DECODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AudioInputError(f"the audio file took over {DECODE_TIMEOUT:g} s to decode") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise AudioInputError(
            "the audio file is not readable as WAV, MP3, M4A/AAC, Ogg, FLAC or WebM audio"
            + (f" ({reason[-1][:200]})" if reason else "")
        )
    samples = np.frombuffer(done.stdout, dtype="<f4").reshape(-1, 2)
    if len(samples) == 0:
        raise AudioInputError("the audio file holds no audio samples")
    if len(samples) > MAX_AUDIO_SECONDS * sample_rate:
        raise AudioInputError(f"the audio is longer than {MAX_AUDIO_SECONDS:g} s")
    return np.ascontiguousarray(samples, dtype=np.float32)


def fit_to(samples: np.ndarray, count: int) -> np.ndarray:
    """`samples` [n, 2] trimmed or padded with silence to exactly `count` samples."""
    if len(samples) >= count:
        return samples[:count]
    return np.pad(samples, ((0, count - len(samples)), (0, 0)))
