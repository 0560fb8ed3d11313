"""Measure RGB -> yuv420p (BT.709, limited range) both ways on this machine, side by side in one run: ffmpeg's
swscale (the encoder's own filter, media.BT709_LIMITED) and the torch conversion (colour.rgb_to_yuv420p, from the
float levels the decode holds) on the default device, or --device cuda.

    .venv/bin/python scripts/colour_bench.py [--width 1920 --height 1080 --frames 48 --device cpu]

ffmpeg's figure is the conversion alone: the same run without the filter (rawvideo read, frames passed on as rgb24)
is timed too and subtracted. The torch figure includes nothing but the conversion (on CUDA: synchronized). The best
of `--repeats` runs each. docs/performance.md ("Where the colour conversion runs") carries the result.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from ltx_runtime import media
from ltx_runtime.colour import rgb_to_yuv420p

CHUNK = 16


def ffmpeg_seconds(raw: Path, width: int, height: int, convert: bool) -> float:
    output = ["-vf", media.BT709_LIMITED, "-pix_fmt", "yuv420p"] if convert else ["-pix_fmt", "rgb24"]
    started = time.perf_counter()
    subprocess.run([media.ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", str(raw), *output, "-f", "null", "-"],
                   check=True)  # fmt: skip
    return time.perf_counter() - started


def torch_seconds(frames: torch.Tensor, device: torch.device) -> float:
    levels = frames.to(device).permute(3, 0, 1, 2).float()  # [3, f, H, W], as the decode holds them
    started = time.perf_counter()
    for start in range(0, levels.shape[1], CHUNK):
        rgb_to_yuv420p(levels[:, start : start + CHUNK])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "frames.rgb"
        subprocess.run([media.ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"mandelbrot=size={args.width}x{args.height}:rate=25", "-frames:v", str(args.frames),
                        "-pix_fmt", "rgb24", "-f", "rawvideo", str(raw)], check=True)  # fmt: skip
        frames = torch.frombuffer(bytearray(raw.read_bytes()), dtype=torch.uint8)
        frames = frames.view(args.frames, args.height, args.width, 3)
        swscale = min(
            ffmpeg_seconds(raw, args.width, args.height, True) - ffmpeg_seconds(raw, args.width, args.height, False)
            for _ in range(args.repeats)
        )
        torch_seconds(frames[:CHUNK], device)  # warm-up (allocator, kernels)
        converted = min(torch_seconds(frames, device) for _ in range(args.repeats))
    print(f"{args.width}x{args.height}, {args.frames} frames, torch {torch.__version__} on {device} "
          f"({torch.get_num_threads()} threads)")  # fmt: skip
    print(f"ffmpeg swscale: {args.frames / swscale:.1f} fps ({swscale:.3f} s)")
    print(f"torch:          {args.frames / converted:.1f} fps ({converted:.3f} s)")
    print(f"torch / ffmpeg speed: {swscale / converted:.2f}x")


if __name__ == "__main__":
    main()
