"""Measure x264 presets and CRFs on the engine's own encode path (media.encode_clip, real ffmpeg), per content.

    .venv/bin/python scripts/encoder_bench.py table [--width 960 --height 540 --frames 48]
    .venv/bin/python scripts/encoder_bench.py clip [--repeats 1]

`table`: for every content x preset x CRF, the encode speed (frames per second of wall time through encode_clip,
BT.709 conversion included), the file size and the PSNR against the lossless frames. `clip`: the 201-frame
1920x1080 encode (8 s at 25 fps) with the old settings (medium, CRF 13) and the new default for quality 95 side by
side in one run, and their ratio. docs/performance.md ("The encoder") carries the results.

The lossless frames come from ffmpeg's own sources (lavfi), written once as raw rgb24 to a scratch folder. PSNR is
ffmpeg's psnr filter (the average over Y, U and V) between the decoded file and the lossless frames converted to
yuv420p by the same BT.709 filter the encoder uses: it measures what x264 loses, not the 4:2:0 conversion both share.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ltx_runtime import media

FPS = 25
CONTENTS = {
    "fine detail (mandelbrot zoom)": "mandelbrot=size={w}x{h}:rate=25",
    "smooth gradients with film grain": "gradients=size={w}x{h}:rate=25:speed=0.02,noise=alls=12:allf=t+u",
    "edges and text (testsrc2)": "testsrc2=size={w}x{h}:rate=25",
}
PRESETS = ("superfast", "veryfast", "faster", "medium")
CRFS = (13, 16, 18, 19, 21)
OLD = ("medium", 13)
"""What quality 95 was encoded with before (x264 `medium`, CRF 13)."""
LIGHTRICKS = ("veryfast", 19)
"""Lightricks' own writer (ltx-pipelines utils/media_io/encode.py: `encode_video`'s defaults)."""
CHUNK = 8


def lossless_frames(content: str, width: int, height: int, frames: int, folder: Path) -> Path:
    path = folder / f"{list(CONTENTS).index(content)}-{width}x{height}-{frames}.rgb"
    if not path.exists():
        source = CONTENTS[content].format(w=width, h=height)
        subprocess.run([media.ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", source,
                        "-frames:v", str(frames), "-pix_fmt", "rgb24", "-f", "rawvideo", str(path)], check=True)  # fmt: skip
    return path


def chunks(raw: Path, width: int, height: int):
    frames = np.memmap(raw, dtype=np.uint8, mode="r").reshape(-1, height, width, 3)
    for start in range(0, len(frames), CHUNK):
        yield np.array(frames[start : start + CHUNK])


def encode(raw: Path, width: int, height: int, preset: str, crf: int, output: Path) -> float:
    """Seconds of wall time to encode the raw frames at (preset, crf) through the engine's encoder."""
    started = time.perf_counter()
    media.encode_clip(chunks(raw, width, height), None, width=width, height=height, fps=FPS, sample_rate=0,
                      output_path=output, output_format=media.OutputFormat.MP4, x264_preset=preset, crf=crf)  # fmt: skip
    return time.perf_counter() - started


def psnr(encoded: Path, raw: Path, width: int, height: int) -> float:
    graph = f"[1:v]{media.BT709_LIMITED},format=yuv420p[reference];[0:v][reference]psnr"
    result = subprocess.run([media.ffmpeg_executable(), "-hide_banner", "-i", str(encoded), "-f", "rawvideo",
                             "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(FPS), "-i", str(raw),
                             "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, check=True)  # fmt: skip
    return float(re.search(r"average:([0-9.]+|inf)", result.stderr).group(1))


def measure(raw: Path, width: int, height: int, frames: int, preset: str, crf: int, scratch: Path) -> dict:
    output = scratch / "out.mp4"
    seconds = encode(raw, width, height, preset, crf, output)
    kbps = output.stat().st_size * 8 / 1000 / (frames / FPS)
    return {"fps": frames / seconds, "seconds": seconds, "kbps": kbps, "psnr": psnr(output, raw, width, height)}


def table(args, scratch: Path) -> None:
    print(f"{args.width}x{args.height}, {args.frames} frames at {FPS} fps; fps = frames per second of wall time\n")
    print("| content | preset | CRF | fps | Mb/s | PSNR dB |")
    print("|---|---|---|---|---|---|")
    for content in CONTENTS:
        raw = lossless_frames(content, args.width, args.height, args.frames, scratch)
        for preset in PRESETS:
            for crf in CRFS:
                row = measure(raw, args.width, args.height, args.frames, preset, crf, scratch)
                print(f"| {content} | {preset} | {crf} | {row['fps']:.1f} | {row['kbps'] / 1000:.1f} | {row['psnr']:.2f} |",
                      flush=True)  # fmt: skip


def clip(args, scratch: Path) -> None:
    width, height, frames = 1920, 1080, 201
    new = (media.X264_PRESET_DEFAULT, media.crf_for_quality(media.OutputFormat.MP4, media.QUALITY_DEFAULT))
    content = args.content
    raw = lossless_frames(content, width, height, frames, scratch)
    print(f"{width}x{height}, {frames} frames ({content}), quality {media.QUALITY_DEFAULT}\n")
    print("| settings | run | seconds | fps | Mb/s | PSNR dB |")
    print("|---|---|---|---|---|---|")
    labels = {OLD: "old", LIGHTRICKS: "Lightricks' writer", new: "new"}
    results = {settings: [] for settings in labels}
    for run in range(1, args.repeats + 1):
        for settings, name in labels.items():  # interleaved, so that a busy moment of the machine hits all
            row = measure(raw, width, height, frames, *settings, scratch)
            results[settings].append(row["seconds"])
            label = f"{name}: {settings[0]}, CRF {settings[1]}"
            print(f"| {label} | {run} | {row['seconds']:.1f} | {row['fps']:.1f} | {row['kbps'] / 1000:.1f} | {row['psnr']:.2f} |",
                  flush=True)  # fmt: skip
    seconds = {settings: np.median(runs) for settings, runs in results.items()}
    print(f"\nwall time (medians): old / new {seconds[OLD] / seconds[new]:.2f}x, "
          f"Lightricks' writer / new {seconds[LIGHTRICKS] / seconds[new]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("table", "clip"))
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--content", choices=CONTENTS, default="smooth gradients with film grain")
    parser.add_argument("--scratch", type=Path, help="keep the lossless frames here between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ltx-encoder-bench-") as temporary:
        scratch = args.scratch or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        (table if args.mode == "table" else clip)(args, scratch)


if __name__ == "__main__":
    main()
