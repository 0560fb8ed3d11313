"""Starts one worker process per GPU (one on the CPU in demo mode), watches them, and restarts the ones that die.

Workers are spawned, not forked (CUDA cannot be forked). When a worker dies, its running task goes straight back to
the queue (leases cover the cases this process cannot see, such as another host's worker), and its scratch files are
removed. The supervisor touches its live workers' rows in the store every few seconds, so that the fleet can tell a
live worker from the row of a host that died. The hang watchdog: a worker whose task has made no progress for `watchdog_seconds` is stopped (SIGTERM, then
SIGKILL after STOP_GRACE_SECONDS: a thread stuck inside CUDA never sees the SIGTERM) and handled like a dead one.
Draining (`drain`, on SIGTERM): workers finish their task and take no other; after the grace period the rest are
stopped and their tasks requeued without counting an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass

from ..logs import task_event
from ..media.store import scratch_file
from ..settings import Settings
from ..store.records import WORKER_HEARTBEAT_SECONDS, TaskStatus, TaskStore, WorkerRecord
from .resilience import LoopHealth, run_forever

log = logging.getLogger(__name__)
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)
STABLE_SECONDS = 120
"""A worker that ran this long before it died restarts without back-off (the back-off is for crash loops)."""
STOP_GRACE_SECONDS = 5
"""Between the SIGTERM and the SIGKILL of a worker that has to go."""


def worker_devices(settings: Settings) -> list[str | None]:
    import torch

    if settings.demo or not torch.cuda.is_available():
        return [None] * (settings.workers or 1)
    count = settings.workers or torch.cuda.device_count()
    return [f"cuda:{i % torch.cuda.device_count()}" for i in range(count)]


@dataclass
class WorkerProcess:
    worker_id: str
    process: multiprocessing.Process
    activity: "multiprocessing.sharedctypes.Synchronized"
    """Time of its task's last progress report, 0.0 while idle (written by the worker)."""
    started: float
    kill_at: float | None = None
    """When a worker being stopped gets its SIGKILL."""
    buried: bool = False
    """Its exit has been handled (`WorkerPool._bury`)."""
    restarting: bool = False
    """Its successor's start is planned."""

    @property
    def busy(self) -> bool:
        return self.process.is_alive() and self.activity.value > 0

    def stop(self) -> None:
        """SIGTERM now, SIGKILL later (`check_stopping`)."""
        if self.kill_at is None:
            self.process.terminate()
            self.kill_at = time.monotonic() + STOP_GRACE_SECONDS

    def check_stopping(self) -> None:
        if self.kill_at is not None and time.monotonic() >= self.kill_at and self.process.is_alive():
            self.process.kill()


class WorkerPool:
    def __init__(self, settings: Settings, store: TaskStore, health: LoopHealth | None = None):
        self.settings = settings
        self.store = store
        self.health = health or LoopHealth()
        self._last_heartbeat = 0.0
        self.devices = worker_devices(settings)
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, WorkerProcess] = {}
        """Each slot's current worker; a dead one stays until its successor starts (readiness shows why it died)."""
        self._failures = [0] * len(self.devices)
        self._draining = self._context.Event()
        self._stop_now = asyncio.Event()

    @property
    def worker_ids(self) -> list[str]:
        return [worker.worker_id for worker in self._workers.values()]

    @property
    def live_worker_ids(self) -> set[str]:
        """The workers whose process is running (a row may still say "ready" of one that died)."""
        return {worker.worker_id for worker in self._workers.values() if worker.process.is_alive()}

    @property
    def busy_workers(self) -> int:
        """How many workers are running a task now."""
        return sum(worker.busy for worker in self._workers.values())

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def start(self) -> None:
        requeued = self.store.requeue_node(self.settings.max_attempts, self.settings.node)
        if requeued:
            log.warning("requeued %d task(s) left running by this node's previous workers", len(requeued))
        self._remove_scratch("*")  # encodes cut short when this node's previous workers died
        for slot in range(len(self.devices)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        if self.draining:
            return
        from .worker import worker_main  # the engine and torch: only where workers run, not on an API node

        worker_id = f"{self.settings.node}/worker{slot}-{uuid.uuid4().hex[:8]}"  # requeue_node finds it by the prefix
        activity = self._context.Value("d", 0.0, lock=False)
        process = self._context.Process(
            target=worker_main,
            args=(worker_id, self.settings.model_dump_json(), self.devices[slot], os.getpid(), activity, self._draining),
            name=worker_id,
            daemon=True,
        )
        process.start()
        self._workers[slot] = WorkerProcess(worker_id, process, activity, time.monotonic())
        log.info("started %s (pid %s) on %s", worker_id, process.pid, self.devices[slot] or "cpu")

    async def watch(self) -> None:
        """Requeue the tasks of dead workers and expired leases; stop hung workers; restart dead workers with a
        growing back-off. A round that fails (the store locked or its disk full) is retried (`run_forever`)."""
        await run_forever("worker pool", self._watch_round, 1, self.health)

    async def _watch_round(self) -> None:
        for slot, worker in self._dead_workers():
            if not worker.restarting:  # the restart needs no store: it is planned even while the store fails
                worker.restarting = True
                self._restart_later(slot, worker)
            await asyncio.to_thread(self._bury, worker, True)  # the store, off the event loop
        await asyncio.to_thread(self.store.requeue_expired, self.settings.max_attempts)
        if time.monotonic() - self._last_heartbeat >= WORKER_HEARTBEAT_SECONDS:
            await asyncio.to_thread(self.store.touch_workers, self.worker_ids)
            self._last_heartbeat = time.monotonic()

    def _dead_workers(self) -> list[tuple[int, WorkerProcess]]:
        """The slots whose worker has exited and is not buried yet; the live ones get the hang watchdog's check."""
        dead = []
        for slot, worker in list(self._workers.items()):
            if worker.process.is_alive():
                self._check_progress(worker)
            elif not worker.buried:
                dead.append((slot, worker))
        return dead

    def _restart_later(self, slot: int, dead: WorkerProcess) -> None:
        if time.monotonic() - dead.started >= STABLE_SECONDS:
            self._failures[slot] = 0
        delay = RESTART_BACKOFF_SECONDS[min(self._failures[slot], len(RESTART_BACKOFF_SECONDS) - 1)]
        self._failures[slot] += 1
        asyncio.get_running_loop().call_later(delay, self._respawn, slot, dead)

    def _check_progress(self, worker: WorkerProcess) -> None:
        """The hang watchdog."""
        worker.check_stopping()
        last = worker.activity.value
        if last and worker.kill_at is None and time.time() - last > self.settings.watchdog_seconds:
            log.warning("%s made no progress for %.0f s (watchdog_seconds): stopping it and requeueing its task",
                        worker.worker_id, time.time() - last)  # fmt: skip
            worker.stop()

    def _respawn(self, slot: int, dead: WorkerProcess) -> None:
        if self._workers.get(slot) is dead:
            self._spawn(slot)

    def _bury(self, worker: WorkerProcess, requeue: bool) -> None:
        """A worker has exited: its tasks go back to the queue (`requeue`: as a failed attempt; else released
        without counting), its scratch files go, and its state says how it ended. Done again at the next round if the
        store failed mid-way (each step can be repeated)."""
        if worker.buried:
            return
        if requeue:
            task_ids = self.store.requeue_owned(self.settings.max_attempts, worker.worker_id)
        else:
            task_ids = self.store.release_owned(worker.worker_id)
        for task_id in task_ids:
            task = self.store.get_by_id(task_id)
            if task.status == TaskStatus.FAILED:
                task_event("failed", task.task_uuid, level=logging.WARNING, worker=worker.worker_id,
                           kind=task.error_code, error=task.error_message)  # fmt: skip
            else:
                task_event("requeued", task.task_uuid, level=logging.WARNING, worker=worker.worker_id,
                           attempts=task.attempts, counted=requeue)  # fmt: skip
        self._remove_scratch(worker.worker_id)
        exit_code = worker.process.exitcode
        state = self._state_of(worker.worker_id)
        if state is not None and state.state == "failed":  # it could not load: keep its reason for readiness
            detail = f"{state.detail} (exit code {exit_code})"
            self.store.worker_state(worker.worker_id, worker.process.pid or 0, "failed", detail)
        else:
            self.store.worker_state(worker.worker_id, worker.process.pid or 0, "stopped", f"exit code {exit_code}")
        worker.buried = True
        level = logging.WARNING if requeue or task_ids else logging.INFO  # a clean stop of an idle worker is routine
        log.log(level, "%s exited with %s; %s %d task(s)", worker.worker_id, exit_code,
                "requeued" if requeue else "released", len(task_ids))  # fmt: skip

    def _state_of(self, worker_id: str) -> WorkerRecord | None:
        return next((w for w in self.store.workers() if w.worker_id == worker_id), None)

    def _remove_scratch(self, worker_id: str) -> None:
        """Remove the scratch files of a worker's unfinished encodes (every worker's for "*")."""
        for partial in self.settings.scratch_dir.glob(scratch_file(self.settings, worker_id, "*").name):
            partial.unlink(missing_ok=True)

    async def drain(self, grace_seconds: float) -> None:
        """Take no new tasks; wait up to `grace_seconds` (or until `stop_now`) for the running ones to finish; then
        stop every worker, their unfinished tasks back in the queue without counting an attempt."""
        self._draining.set()
        busy = [worker.worker_id for worker in self._workers.values() if worker.busy]
        log.warning("draining: %d worker(s) busy; waiting up to %.0f s for them", len(busy), grace_seconds)
        deadline = time.monotonic() + grace_seconds
        while any(worker.busy for worker in self._workers.values()) and not self._stop_now.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("draining: the grace period is over; stopping the busy workers")
                break
            try:
                await asyncio.wait_for(self._stop_now.wait(), min(remaining, 0.2))
            except asyncio.TimeoutError:
                pass
        self.stop()

    def stop_now(self) -> None:
        """End a drain at once (a second SIGTERM)."""
        self._draining.set()
        self._stop_now.set()

    def stop(self) -> None:
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self._workers.values():
            worker.process.join(STOP_GRACE_SECONDS * 2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(STOP_GRACE_SECONDS)
            try:
                self._bury(worker, requeue=False)
            except Exception as error:  # noqa: BLE001 - the store failing at shutdown: the next start requeues
                log.warning("could not release %s's tasks: %s: %s", worker.worker_id, type(error).__name__, error)
