"""The stages of a job, and one progress percentage over all of them.

A clip goes through these stages in order (Fast, Pro and LTX-2.3 alike): the engine reports each as
`(stage, fraction of that stage done)`, the server adds `uploading` (the finished file put where clients fetch it).
`JobProgress` turns the reports into one percentage over the whole job, each stage weighted by its predicted share
of the time, so that the VAE decode and the encode, which take most of the time on a CPU, move the percentage too.

The prediction is measured: the seconds each stage took in the last job of the same model, size, length and frame
rate when there was one (production traffic repeats a few sizes), else DEFAULT_RATES (seconds per output pixel of one
frame, measured on tiny weights on a CPU, where the decode and the encode dominate; the text encoder's time does not
depend on the clip).
"""

from __future__ import annotations

import time
from typing import Callable

STAGES = ("text_encoding", "stage_1", "upsampling", "stage_2", "decoding", "encoding", "uploading")
"""Every stage a job goes through, in order; the names the API and the logs show."""
STAGE_LABELS = {
    "text_encoding": "text encoding",
    "stage_1": "stage 1",
    "upsampling": "upsampling",
    "stage_2": "stage 2",
    "decoding": "decoding",
    "encoding": "encoding",
    "uploading": "uploading",
}
FIXED_COST_STAGES = ("text_encoding",)
"""Stages whose time does not grow with the clip's size and length."""

StageCallback = Callable[[str, float], None]
"""(stage, fraction of that stage done, 0.0-1.0)"""

DEFAULT_RATES = {
    "text_encoding": 0.1,
    "stage_1": 1e-8,
    "upsampling": 1.5e-8,
    "stage_2": 2.5e-8,
    "decoding": 3e-7,
    "encoding": 1e-7,
    "uploading": 1e-10,
}
"""Seconds per unit (per job for text encoding), measured on tiny weights on a 2-core CPU (LTX-2 Fast, 1080p, 6 s)."""


def denoising_steps(report: StageCallback, stage_1_steps: int) -> Callable[[int, int], None]:
    """The recipes' step callback (steps done, total steps over both denoising stages) as stage reports. Stage 1
    has `stage_1_steps` steps and is followed by the upsampling, stage 2 has the rest."""

    def on_step(done: int, total: int) -> None:
        if done < stage_1_steps:
            report("stage_1", done / stage_1_steps)
        elif done == stage_1_steps:
            report("stage_1", 1.0)
            report("upsampling", 0.0)
        else:
            report("stage_2", (done - stage_1_steps) / (total - stage_1_steps))

    return on_step


def cpu_stage_seconds(width: int, height: int, frames: int) -> dict[str, float]:
    """Each stage's seconds at DEFAULT_RATES: a clip on tiny weights on a 2-core CPU (the guided recipes' stage 1,
    with more steps, takes longer)."""
    units = width * height * frames
    return {stage: rate * (1 if stage in FIXED_COST_STAGES else units) for stage, rate in DEFAULT_RATES.items()}


class StageTimes:
    """Predicted seconds per stage for a job: the measured ones of the last job of the same model and shape."""

    def __init__(self):
        self._measured: dict[tuple[str, int, int, int], dict[str, float]] = {}

    def predict(self, model: str, width: int, height: int, frames: int) -> dict[str, float]:
        measured = self._measured.get((model, width, height, frames), {})
        return {**cpu_stage_seconds(width, height, frames), **measured}

    def learn(self, model: str, width: int, height: int, frames: int, seconds: dict[str, float]) -> None:
        self._measured[(model, width, height, frames)] = dict(seconds)


class JobProgress:
    """Called with stage reports; calls `on_change(stage, percent)` whenever the stage or the whole percentage
    (0-99; 100 is reserved for the finished job) changes. The percentage never goes back (a retried attempt
    starts the stages again)."""

    def __init__(self, predicted: dict[str, float], on_change: Callable[[str, int], None], stages: tuple[str, ...] = STAGES):
        total = sum(predicted[stage] for stage in stages)
        self._starts_at = {}  # each stage's share of the job before it starts, and its own share
        done = 0.0
        for stage in stages:
            self._starts_at[stage] = (done / total, predicted[stage] / total)
            done += predicted[stage]
        self.on_change = on_change
        self.stage: str | None = None
        self.percent = 0
        self._entered: dict[str, float] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        if stage not in self._entered:
            self._entered[stage] = time.perf_counter()
        before, share = self._starts_at[stage]
        percent = max(self.percent, min(99, int(100 * (before + share * min(max(fraction, 0.0), 1.0)))))
        if stage != self.stage or percent != self.percent:
            self.stage, self.percent = stage, percent
            self.on_change(stage, percent)

    def seconds(self) -> dict[str, float]:
        """Measured seconds per stage, each from its first report to the first report of the stage after it (the
        last one to now)."""
        entered = sorted(self._entered.items(), key=lambda item: item[1])
        ends = [started for _, started in entered[1:]] + [time.perf_counter()]
        return {stage: end - started for (stage, started), end in zip(entered, ends)}
