"""Shared fixtures: one set of tiny weights and one resident engine for the whole session, a media prober, and the
loopback servers several layers use (an S3 API server, a recording HTTP receiver). Helpers live in tests/support/."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ltx_runtime.request import GenerationRequest
from support.receiver import Receiver
from support.s3_server import CREDENTIALS, MotoServer


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Tiny weights for both architectures, built once for the session (what `--weights tiny` builds on demand)."""
    from ltx_runtime.tiny import ARCHITECTURES, build_tiny_weights  # here: torch is imported only by tests that need it

    root = tmp_path_factory.mktemp("tiny")
    for architecture in ARCHITECTURES:
        build_tiny_weights(root / architecture, architecture)
    return root


@pytest.fixture(scope="session")
def tiny_weights(tiny_root) -> Path:
    """The LTX-2-shaped tiny folder."""
    return tiny_root / "ltx-2"


@pytest.fixture(scope="session")
def engine(tiny_root):
    from ltx_runtime.engine import Engine

    # x264's fastest preset: these tests check shapes and streams, not compression efficiency.
    return Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast")



@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server, and boto3's credentials in the environment (where production reads them too)."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    with pytest.MonkeyPatch.context() as environment:
        for name, value in CREDENTIALS.items():
            environment.setenv(name, value)
        yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver():
    """An image host, webhook receiver and upload endpoint on a loopback port (support/receiver.py)."""
    receiver = Receiver()
    yield receiver
    receiver.http.shutdown()


@dataclass
class Probe:
    video_codec: str
    width: int
    height: int
    pix_fmt: str
    frames: int
    fps: Fraction
    duration: float
    audio_codec: str | None
    audio_rate: int | None
    audio_channels: int | None
    audio_duration: float | None


@contextmanager
def tmpfs(path: Path, size: str):
    """A small tmpfs mounted at `path`, for disk-full faults (root and mount(2) needed; a skip says so)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); this test needs one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def asking(spec, plan, prompt: str, **fields) -> GenerationRequest:
    """The request a recipe reads its prompt (and guidance settings) from, for a plan made by plan_generation."""
    return GenerationRequest(spec.id, prompt, plan.width, plan.height, plan.duration, plan.fps, audio=True, **fields)


def probe(path: Path) -> Probe:
    """What a user would check with ffprobe, read through PyAV (FFmpeg's libraries); frames are counted by decoding."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_duration = None
        if audio is not None:
            container.seek(0)
            audio_duration = sum(frame.samples for frame in container.decode(audio)) / audio.rate
        return Probe(
            video_codec=video.codec_context.name,
            width=video.codec_context.width,
            height=video.codec_context.height,
            pix_fmt=video.codec_context.pix_fmt,
            frames=frames,
            fps=video.average_rate,
            duration=container.duration / av.time_base,
            audio_codec=audio.codec_context.name if audio else None,
            audio_rate=audio.rate if audio else None,
            audio_channels=audio.channels if audio else None,
            audio_duration=audio_duration,
        )


def colour_tags(path: Path) -> tuple[int, int, int, int]:
    """The video stream's (matrix, primaries, transfer, range) codes; BT.709 limited range is (1, 1, 1, 1)."""
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.colorspace, context.color_primaries, context.color_trc, context.color_range


def read_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture
def prober():
    return probe


@pytest.fixture
def say(request):
    """Print a line at once, even while pytest captures output: what a long test is about to do."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(message: str) -> None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n[{request.node.name}] {message}")

    return write


LONG_MARKERS = ("fuzz_long", "trace_long")


def pytest_collection_modifyitems(config, items):
    """The long runs (LONG_MARKERS) are deselected unless the marker expression names them (-m fuzz_long)."""
    asked = config.getoption("markexpr") or ""
    left_out = [marker for marker in LONG_MARKERS if marker not in asked]

    def is_left_out(item) -> bool:
        return any(item.get_closest_marker(marker) for marker in left_out)

    deselected = [item for item in items if is_left_out(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not is_left_out(item)]
