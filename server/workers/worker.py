"""The GPU worker: a spawned child process that owns one device, keeps the engine resident and runs tasks.

It claims the oldest queued task from the store, renews its lease while it works, reports per-step progress, encodes
each result into a scratch file, puts it in the media store (`server/media/store.py`) and only then records it (with
its deliveries) in one transaction. Bad tasks fail with an `ErrorKind` and the worker carries on; a cancelled task
stops at its next denoising step (the progress callback sees that the worker no longer holds it), leaves no file or
object behind, and the worker takes the next task; if the worker itself dies, the lease runs out (or the supervisor
notices) and the task runs again elsewhere. A worker whose parent dies exits, so that no orphan keeps working on a task
that a restarted server has put back in the queue.

Hang watchdog: every progress report (a denoising step, a decoded chunk, the encoder's end) stamps `activity`, a
value shared with the supervisor (0 while idle). The lease is renewed only while the last stamp is younger than
`watchdog_seconds`, and the supervisor kills a worker whose stamp is older, so a worker stuck forever (inside CUDA,
say) loses its task instead of holding it. A draining worker (`draining` set) finishes its task and claims no other.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace

from ltx_runtime.admission import SAFETY_CHECKER, MemoryLimitError, MemoryProfile
from ltx_runtime.catalog import get_model
from ltx_runtime.engine import Engine, OutOfMemory
from ltx_runtime.loras import read_loras
from ltx_runtime.memory import free_cached_memory
from ltx_runtime.media import EncodingError, OutputFormat
from ltx_runtime.progress import JobProgress, StageCallback, StageTimes
from ltx_runtime.request import RequestError, SafetyMode
from ltx_runtime.safety import (
    ContentFlagged,
    FrameScreen,
    SafetyChecker,
    checker_device,
    ensure_tiny_safety_checker,
    image_pixels,
)
from ltx_runtime.weights import WeightsError, read_lock

from ..logs import setup_logging, task_event
from ..media.store import disk_full, image_key, media_key, open_media, scratch_file
from ..settings import Settings
from ..store import open_store
from ..store.records import LeaseLost, ResultStatus, TaskRecord, TaskStatus, TaskStore
from ..tasks.jobs import ErrorKind, Job
from .faults import inject_fault
from .resilience import backoff

CPU_WORKER_NICENESS = 10
"""Added to a CPU worker's niceness: its threads (and torch's, started after) yield the cores to the API."""

log = logging.getLogger("ltx_runtime.worker")
PRELOAD_MODEL = "lightricks:2@1"
NO_GPU_MESSAGE = (
    "no CUDA GPU is available (torch.cuda.is_available() is False): the real models need one. Check the driver "
    "(nvidia-smi), or start the server with --demo for the tiny random demo weights"
)
IDLE_POLL_SECONDS = 5.0
"""The longest an idle worker waits before it looks for work again, when no wake-up came (the store's wait_for_work)."""


class TaskReleased(Exception):
    """The worker no longer holds its task: it was cancelled, or its lease ran out and it went elsewhere."""


def result_file_name(video_uuid: str, output_format: str) -> str:
    return f"{video_uuid}.{OutputFormat(output_format).value}"


class Worker:
    def __init__(self, worker_id: str, settings: Settings, device: str | None, activity, draining):
        self.worker_id = worker_id
        self.settings = settings
        self.activity = activity
        """A shared double: the time of the running task's last progress report, 0.0 while idle (the watchdog)."""
        self.draining = draining
        """A shared event: set, the worker finishes its task and takes no other."""
        self.store: TaskStore = open_store(settings.store_url, settings.sqlite_busy_timeout)
        self.media = open_media(settings)
        import torch

        self.engine = Engine(
            "tiny" if settings.demo else settings.weights_dir,
            device=torch.device(device) if device else None,
            x264_preset=settings.x264_preset,
            memory_profile=None if settings.memory_profile == "auto" else MemoryProfile(settings.memory_profile),
            memory_budget_gib=settings.memory_budget_gib,
            speed_options=settings.speed_options,
            lock=read_lock(settings.weights_lock),
            tiny_folder=settings.tiny_dir,
            loras=read_loras(settings.weights_lock, settings.loras),
            preview_every=settings.preview_every,
            video_decoder=settings.video_decoder,
        )
        self._safety_checker: SafetyChecker | None = None
        self.stage_times = StageTimes()

    def serve_forever(self) -> None:
        self.store.worker_state(self.worker_id, os.getpid(), "starting")
        try:
            if self.engine.device.type != "cuda" and not self.settings.demo:
                raise RuntimeError(NO_GPU_MESSAGE)
            self.engine.load(PRELOAD_MODEL)
        except Exception as error:  # noqa: BLE001 - any load failure is reported and ends the worker
            log.exception("worker %s could not load %s", self.worker_id, PRELOAD_MODEL)
            self.store.worker_state(self.worker_id, os.getpid(), "failed", f"{type(error).__name__}: {error}")
            raise SystemExit(3) from error
        detail = f"{self.engine.device} {'tiny demo weights' if self.engine.uses_tiny_weights else 'weights'}"
        profile = self.engine.memory_profile.value if self.engine.memory_profile else "auto"  # auto: per model
        self.store.worker_state(self.worker_id, os.getpid(), "ready", detail, profile, self.engine.memory_budget)
        failures = 0
        while not self.draining.is_set():
            task = None
            try:
                task = self.store.claim(self.worker_id, self.settings.lease_seconds)
                failures = 0
                if task is None:
                    self.store.wait_for_work(IDLE_POLL_SECONDS)
                    continue
                self.activity.value = time.time()
                try:
                    self.run(task)
                finally:
                    self.activity.value = 0.0
            except self.store.errors as error:  # locked past its busy timeout, its disk full, its server gone
                failures += 1
                self._store_failed(task, error, failures)
        log.info("worker %s drained: it takes no more tasks", self.worker_id)

    def _store_failed(self, task: TaskRecord | None, error: Exception, failures: int) -> None:
        """The task store failed: wait (a growing back-off), then put the task this worker held back in the queue (an
        attempt); if the store still fails, its lease runs out and the supervisor requeues it."""
        delay = backoff(failures)
        log.warning("worker %s: the task store failed (%d in a row), retrying in %.0f s: %s: %s", self.worker_id,
                    failures, delay, type(error).__name__, error, exc_info=failures == 1)  # fmt: skip
        time.sleep(delay)
        if task is not None:
            try:
                if self.store.requeue_owned(self.settings.max_attempts, self.worker_id):
                    task_event("requeued", task.task_uuid, level=logging.WARNING, worker=self.worker_id,
                               reason="task store error")  # fmt: skip
            except self.store.errors:
                pass

    def run(self, task: TaskRecord) -> None:
        job = Job.from_record(task)
        done = threading.Event()
        heartbeat = threading.Thread(target=self._renew_lease, args=(task.id, done), daemon=True)
        heartbeat.start()
        finished = False
        started = time.perf_counter()
        fields = {"key": task.key_id, **job.log_fields()}
        task_event("started", task.task_uuid, worker=self.worker_id, attempt=task.attempts, **fields)
        try:
            if job.safety.check_inputs:  # the checks the task was accepted with, the operator's requirement included
                self._check_input_images(job)
            for result in task.results:
                if result.status != ResultStatus.SUCCESS:  # a retried task keeps the results it already has
                    self._generate(task, job, result.index, result.seed, result.video_uuid)
            self.store.finish(task.id, self.worker_id)
            finished = True
            task_event("finished", task.task_uuid, seconds=time.perf_counter() - started, **fields)
        except (TaskReleased, LeaseLost):
            cancelled = self.store.get_by_id(task.id).status == TaskStatus.CANCELLED
            task_event("cancelled" if cancelled else "lease_lost", task.task_uuid, level=logging.WARNING,
                       worker=self.worker_id, seconds=time.perf_counter() - started)  # fmt: skip
        except ContentFlagged as error:
            self._fail(task, started, ErrorKind.CONTENT_FLAGGED, str(error))
        except MemoryLimitError as error:  # submitted before this worker reported its memory
            self._fail(task, started, ErrorKind.TOO_LARGE, str(error))
        except RequestError as error:  # validated already; left: an unreadable image or audio, keyframes past a picked length
            kind = {"image": ErrorKind.INVALID_IMAGE, "keyframes": ErrorKind.INVALID_IMAGE,
                    "audio_input": ErrorKind.INVALID_AUDIO}.get(error.parameter, ErrorKind.INVALID_REQUEST)  # fmt: skip
            self._fail(task, started, kind, str(error))
        except OutOfMemory as error:
            self._fail(task, started, ErrorKind.OUT_OF_MEMORY, str(error))
        except WeightsError as error:
            self._fail(task, started, ErrorKind.MODEL_UNAVAILABLE, str(error))
        except self.store.errors:
            raise  # not the task's fault: it runs again (serve_forever)
        except Exception as error:  # noqa: BLE001 - one task's failure must not end the worker
            if disk_full(error):  # this task fails; the next one may find room
                message = "no space left on the disk to write or store the video; nothing was served"
                self._fail(task, started, ErrorKind.STORAGE_FULL, message)
            elif isinstance(error, EncodingError):  # ffmpeg crashed or was killed
                self._fail(task, started, ErrorKind.GENERATION_FAILED, f"the video encoder failed: {error}")
            else:
                log.exception("task %s failed", task.task_uuid)
                self._fail(task, started, ErrorKind.GENERATION_FAILED, f"generation failed: {type(error).__name__}")
        finally:
            done.set()
            if not finished:
                free_cached_memory()  # an interrupted clip's tensors are unreachable now that its exception is gone

    def _fail(self, task: TaskRecord, started: float, kind: ErrorKind, message: str) -> None:
        self.store.fail(task.id, kind.value, message)
        task_event("failed", task.task_uuid, level=logging.WARNING, key=task.key_id, kind=kind.value, error=message,
                   seconds=time.perf_counter() - started, **Job.from_record(task).log_fields())  # fmt: skip

    def _check_held(self, task: TaskRecord) -> None:
        if not self.store.holds(task.id, self.worker_id):
            raise TaskReleased(task.task_uuid)

    def _progress(
        self, task: TaskRecord, index: int, video_uuid: str, predicted: dict[str, float]
    ) -> tuple[JobProgress, StageCallback]:
        """The engine's progress callback: stage reports become the result's percentage and stage in the store, and a
        log line when a stage starts; every report (each denoising step, each decoded chunk) first checks that this
        worker still holds the task, so a cancelled one stops within one step, and feeds the hang watchdog."""
        stages_logged = set()
        stages_reported = set()

        def on_change(stage: str, percent: int) -> None:
            self.store.set_progress(task.id, index, percent, stage)
            if stage not in stages_logged:  # a milestone: the start of each stage
                stages_logged.add(stage)
                task_event("progress", task.task_uuid, videoUUID=video_uuid, stage=stage, progress=percent)

        tracker = JobProgress(predicted, on_change)

        def report(stage: str, fraction: float) -> None:
            self.activity.value = time.time()
            if stage not in stages_reported:
                stages_reported.add(stage)
                inject_fault(stage, task.attempts, task.task_uuid)
            self._check_held(task)
            tracker(stage, fraction)

        return tracker, report

    def safety_checker(self) -> SafetyChecker:
        """The content classifier, loaded on first use and kept for the worker's life."""
        if self._safety_checker is None:
            folder = self.settings.safety_folder
            if self.settings.tiny_safety_checker:
                ensure_tiny_safety_checker(folder.parent)
            device = checker_device(self.engine.device, self.engine.profile_for(PRELOAD_MODEL))
            self._safety_checker = SafetyChecker.load(
                folder, device, self.settings.safety_adjustment, self.engine.lock.get(SAFETY_CHECKER)
            )
            log.info("content classifier loaded from %s on %s", folder, device)
        return self._safety_checker

    def _check_input_images(self, job: Job) -> None:
        """checkInputs: each frame image as sent, before any generation."""
        for item in job.frame_images or ():
            pixels = image_pixels(self.media.read_bytes(image_key(item["file"])))
            if self.safety_checker().flags(pixels[None]).any():
                raise ContentFlagged(f"the content safety check flagged the frame image for frame {item['frame']}"
                                     " (inputs.frameImages); nothing was generated")  # fmt: skip

    def _generate(self, task: TaskRecord, job: Job, index: int, seed: int, video_uuid: str) -> None:
        request = job.generation_request(seed, lambda file_name: self.media.read_bytes(image_key(file_name)))
        picked = job.duration is None
        if picked:  # the duration head's pick, for the progress, the check and the cost (the engine asks it again)
            job = replace(job, duration=self.engine.choose_duration(job.model, job.prompt, job.fps))
            task_event("duration", task.task_uuid, seconds=job.duration, frames=round(job.duration * job.fps))
        file_name = result_file_name(video_uuid, job.output_format)
        scratch = scratch_file(self.settings, self.worker_id, file_name)
        scratch.parent.mkdir(parents=True, exist_ok=True)
        screen = None
        if job.safety.mode is not SafetyMode.NONE:
            screen = FrameScreen(self.safety_checker().flags, job.safety.mode, round(job.duration * job.fps), job.fps)
        shape = (job.model, job.width, job.height, round(job.duration * job.fps))
        tracker, report = self._progress(task, index, video_uuid, self.stage_times.predict(*shape))

        def preview(image: str, step: int, steps: int) -> None:  # the playground's live preview (getResponse)
            self.store.set_preview(task.id, index, {"image": image, "step": step, "steps": steps})

        started = time.perf_counter()
        try:
            self.engine.generate(request, scratch, progress=report, frame_observer=screen, preview=preview)
            gpu_seconds = time.perf_counter() - started
            tracker("uploading", 0.0)
            inject_fault("uploading", task.attempts, task.task_uuid)  # the complete file is still the scratch one
            if screen is not None:
                log.info("content check (%s): %d frames in %.2f s, none flagged", job.safety.mode.value, screen.checked,
                         screen.seconds)  # fmt: skip
            self._check_held(task)  # cancelled while the video was decoded and encoded
            size = scratch.stat().st_size
            self.media.put_file(media_key(file_name), scratch, OutputFormat(job.output_format).content_type)
        finally:
            scratch.unlink(missing_ok=True)
        ttl = job.ttl or self.settings.media_ttl_seconds
        try:
            self.store.complete_result(
                task.id, self.worker_id, index, file_name, gpu_seconds, self._cost(job, gpu_seconds), self.store.now() + ttl,
                job.deliveries(), duration=job.duration if picked else None,
            )  # fmt: skip
        except LeaseLost:
            # else a retry elsewhere owns this file name
            if self.store.get_by_id(task.id).status == TaskStatus.CANCELLED:
                self.media.delete(media_key(file_name))
            raise
        stage_seconds = tracker.seconds()
        self.stage_times.learn(*shape, stage_seconds)
        task_event("result", task.task_uuid, videoUUID=video_uuid, seed=seed, bytes=size,
                   seconds=gpu_seconds, stages=",".join(f"{stage}:{spent:.2f}" for stage, spent in stage_seconds.items()))  # fmt: skip

    def _cost(self, job: Job, gpu_seconds: float) -> float:
        if self.settings.cost_mode == "hosted":
            return get_model(job.model).hosted_price(job.width, job.height, job.duration) or 0.0
        return round(gpu_seconds * self.settings.price_per_gpu_hour / 3600, 6)

    def _renew_lease(self, task_id: int, done: threading.Event) -> None:
        """Renews the lease while the generation makes progress; a stuck one lets it run out (the hang watchdog)."""
        while not done.wait(self.settings.lease_seconds / 3):
            if time.time() - self.activity.value < self.settings.watchdog_seconds:
                try:
                    self.store.renew_lease(task_id, self.worker_id, self.settings.lease_seconds)
                except self.store.errors as error:  # the next renewal may get through before the lease runs out
                    log.warning("worker %s: could not renew its lease: %s: %s", self.worker_id, type(error).__name__,
                                error)  # fmt: skip


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the server is gone; its successor requeues our task
        time.sleep(0.5)


def worker_main(worker_id: str, settings_json: str, device: str | None, parent_pid: int, activity, draining) -> None:
    """Entry point of a spawned worker process; `activity` and `draining` are shared with the supervisor."""
    settings = Settings.model_validate_json(settings_json)
    setup_logging(settings.log_level, settings.log_format, worker_id)
    # Ctrl-C reaches the whole process group: the server stops its workers itself. A SIGTERM ends the worker through
    # the normal exit path, so that nothing (e.g. a multiprocessing semaphore) is left for the resource tracker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if device is None:
        # A CPU worker shares the cores with the API process; the API answers first (docs/performance.md).
        os.nice(CPU_WORKER_NICENESS)
    Worker(worker_id, settings, device, activity, draining).serve_forever()
