"""What the content check adds to a clip: the real classifier's architecture (CLIP ViT-L/14 safety checker, random
weights: same compute, no download) on `--frames` random frames of `--width` x `--height`, timed per frame for the
image processor and the classifier, and extrapolated to `--clip-frames` (full mode) and to fast mode's key frames.

    PYTHONPATH=. python scripts/measure_safety.py [--device cuda] [--frames 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessorPil

from ltx_runtime.safety import BATCH_SIZE, SafetyChecker, key_frames

# config.json of CompVis/stable-diffusion-safety-checker (vision tower and projection; the text tower is unused).
REAL_CONFIG = dict(
    projection_dim=768,
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       patch_size=14, image_size=224),
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=32, help="frames actually classified (a multiple of the batch)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--clip-frames", type=int, default=200, help="frames of the clip to extrapolate to")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = StableDiffusionSafetyChecker(CLIPConfig(**REAL_CONFIG)).to(device, dtype).eval()
    checker = SafetyChecker(model, CLIPImageProcessorPil())  # the real processor config is the class default
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, args.height, args.width, 3), dtype=np.uint8)

    checker.flags(frames[:BATCH_SIZE])  # warm-up
    started = time.perf_counter()
    checker.processor(images=list(frames), return_tensors="pt")
    processing = (time.perf_counter() - started) / args.frames
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    checker.flags(frames)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = (time.perf_counter() - started) / args.frames
    cpu = (time.process_time() - cpu_started) / args.frames
    fast = len(key_frames(args.clip_frames, args.fps))
    print(f"{device} {torch.get_num_threads()} threads, {args.frames} frames of {args.width}x{args.height}, "
          f"batches of {BATCH_SIZE}: image processor {processing * 1000:.1f} ms/frame, "
          f"classifier {(total - processing) * 1000:.1f} ms/frame, together {total * 1000:.1f} ms/frame "
          f"({cpu:.2f} CPU-seconds/frame, all threads)")  # fmt: skip
    print(f"full ({args.clip_frames} frames): {total * args.clip_frames:.1f} s; "
          f"fast ({fast} key frames): {total * fast:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
