"""Audio test signals and their comparison, for the audio-to-video tests (engine, server and SDK layers)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ltx_runtime.audio_input import decode_audio
from ltx_runtime.media import ffmpeg_executable

def tone(seconds: float, rate: int = 44100, fmt: str = "wav", frequency: float = 440.0) -> bytes:
    """A test signal written by the real ffmpeg: a sine on the left, a chirp-like sum on the right (so that channels and
    time are both told apart), encoded as `fmt` (wav, mp3, m4a, ogg)."""
    codec = {"wav": ["-c:a", "pcm_s16le"], "mp3": ["-c:a", "libmp3lame"], "m4a": ["-c:a", "aac"],
             "ogg": ["-c:a", "libvorbis"]}[fmt]  # fmt: skip
    container = {"m4a": "ipod"}.get(fmt, fmt)
    source = (f"aevalsrc=0.5*sin(2*PI*{frequency}*t)|0.3*sin(2*PI*(200+150*t)*t)+0.2*sin(2*PI*1300*t)"
              f":s={rate}:d={seconds}")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:  # a file: MP4/M4A cannot be written to a pipe
        path = Path(scratch) / f"tone.{fmt}"
        subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", source, *codec,
                        "-f", container, str(path)], check=True)  # fmt: skip
        return path.read_bytes()

def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    count = min(len(reference), len(test))
    reference, test = reference[:count], test[:count]
    return 10 * np.log10(np.sum(reference**2) / max(np.sum((reference - test) ** 2), 1e-20))


def audio_track(path: Path, rate: int) -> np.ndarray:
    """A clip's audio track as float32 stereo [samples, 2] at `rate`: taken out of the file as WAV by the real ffmpeg
    first, since a 1080p clip is larger than the input-audio limit that decode_audio keeps."""
    wav = subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn",
                          "-c:a", "pcm_f32le", "-f", "wav", "-"], check=True, capture_output=True).stdout  # fmt: skip
    return decode_audio(wav, rate)
