"""What the playground's live preview costs: one engine on tiny weights (CPU), the same clip with and without it.

    PYTHONPATH=. python scripts/measure_preview.py [WIDTH HEIGHT DURATION FPS] [--runs N]

Prints the time spent in the preview inside the denoising loop (projection, PNG and the task store write the worker
makes), per stage-1 step and as a share of the clip, and the wall time of the clip with and without it (noisy on a
shared CPU; the in-loop time is the exact figure). The map's one-time fit per VAE is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ltx_runtime import preview
from ltx_runtime.engine import Engine
from ltx_runtime.request import GenerationRequest
from server.store import open_store

MODEL = "ltx-runtime:tiny@1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shape", nargs="*", type=int, default=[1024, 576, 2, 25])
    parser.add_argument("--runs", type=int, default=3)
    width, height, duration, fps = parser.parse_args().shape
    runs = parser.parse_args().runs
    folder = Path(tempfile.mkdtemp())
    store = open_store(f"sqlite:///{folder / 'tasks.db'}")
    engine = Engine("tiny", x264_preset="ultrafast")
    request = GenerationRequest(MODEL, "a lighthouse", width, height, duration, fps, audio=False, seed=1)
    engine.generate(request, folder / "warm.mp4")
    started = time.perf_counter()
    preview.rgb_projection(engine.load(MODEL).pipeline.vae)
    fit = time.perf_counter() - started

    in_loop: list[float] = []
    observe = preview.LatentPreview.__call__

    def timed(self, *args):
        clock = time.perf_counter()
        observe(self, *args)
        in_loop.append(time.perf_counter() - clock)

    preview.LatentPreview.__call__ = timed
    step_times: list[float] = []
    with_preview, without = [], []

    def plain() -> None:
        clock = time.perf_counter()
        engine.generate(request, folder / "plain.mp4", progress=lambda done, total: None)
        without.append(time.perf_counter() - clock)

    def previewed() -> None:
        in_loop.clear()
        step_times.clear()
        clock = time.perf_counter()
        engine.generate(
            request, folder / "previewed.mp4", progress=lambda done, total: step_times.append(time.perf_counter()),
            preview=lambda image, step, steps: store.set_preview(1, 0, {"image": image, "step": step, "steps": steps}),
        )  # fmt: skip
        with_preview.append(time.perf_counter() - clock)

    for run in range(runs):  # alternating which goes first, so that neither always runs on a warmer machine
        for generate in (plain, previewed) if run % 2 else (previewed, plain):
            generate()
    stage_1_step = (step_times[len(in_loop) - 1] - step_times[0]) / (len(in_loop) - 1)
    clip = statistics.median(with_preview)
    per_step = sum(in_loop) / len(in_loop)
    print(
        f"{MODEL} {width}x{height} {duration} s {fps} fps on {engine.device}: map fitted once in {fit:.2f} s; "
        f"preview {1000 * sum(in_loop):.1f} ms per clip over {len(in_loop)} stage-1 steps "
        f"({1000 * per_step:.2f} ms per step, {100 * per_step / stage_1_step:.2f} % "
        f"of a {1000 * stage_1_step:.0f} ms stage-1 step, {100 * sum(in_loop) / clip:.2f} % of the clip); "
        f"clip median {clip:.2f} s with, {statistics.median(without):.2f} s without ({runs} runs each)"
    )


if __name__ == "__main__":
    main()
