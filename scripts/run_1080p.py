"""The foundation issue's acceptance run at full size: LTX-2 Fast, 1920x1080, 6 s, 25 fps, on tiny weights.

Runs `ltx-runtime generate` once per format with and without audio, probes each file with PyAV (FFmpeg's libraries)
and prints what a user would check, with the wall time and peak resident memory of each run.

    .venv/bin/python scripts/run_1080p.py [--formats mp4,webm,mov] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av


def peak_rss_of_child(command: list[str]) -> tuple[float, float]:
    """Run `command`; return (wall seconds, peak RSS in GB) of that child alone (run in a fresh helper process)."""
    helper = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], check=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", helper, *command], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return wall, int(output.stdout.strip().splitlines()[-1]) / 1e6  # ru_maxrss is in KB on Linux


def describe(path: Path) -> str:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        text = (
            f"{video.codec_context.name} {video.codec_context.width}x{video.codec_context.height} "
            f"{video.codec_context.pix_fmt}, {frames} frames, {video.average_rate} fps, "
            f"{container.duration / av.time_base:.3f} s"
        )
        for audio in container.streams.audio:
            text += f", {audio.codec_context.name} {audio.rate} Hz {audio.channels} ch"
        return text if container.streams.audio else text + ", no audio stream"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="mp4,webm,mov")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="ltx-1080p-")))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| format | audio | wall s | peak RSS GB | file MB | probe |\n|---|---|---|---|---|---|")
    for output_format in args.formats.split(","):
        for audio in ("--audio", "--no-audio"):
            path = args.out / f"clip{audio.replace('--', '-')}.{output_format}"
            command = [
                sys.executable, "-m", "ltx_runtime", "generate", "--weights", "tiny", "--model", "lightricks:2@1",
                "--width", "1920", "--height", "1080", "--duration", "6", "--fps", "25", audio, "--seed", "1",
                "-p", "a sunset over the ocean", "-o", str(path),
            ]  # fmt: skip
            wall, peak = peak_rss_of_child(command)
            size = path.stat().st_size / 1e6
            print(f"| {output_format} | {audio == '--audio'} | {wall:.1f} | {peak:.2f} | {size:.0f} | {describe(path)} |")
            path.unlink()


if __name__ == "__main__":
    main()
