"""Starts one worker process per GPU (one on the CPU in demo mode), watches them, and restarts the ones that die.

Workers are spawned, not forked (CUDA cannot be forked). When a worker dies, its running task goes straight back to
the queue (leases cover the cases this process cannot see, such as another host's worker). The supervisor touches its
live workers' rows in the store every few seconds, so that the fleet can tell a live worker from the row of a host
that died.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
import uuid

from .media_store import scratch_file
from .settings import Settings
from .tasks import TaskStore

log = logging.getLogger(__name__)
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)
HEARTBEAT_SECONDS = 5
WORKER_STALE_SECONDS = 6 * HEARTBEAT_SECONDS
"""A worker row not touched for this long belongs to a supervisor (a host) that is gone."""


def worker_devices(settings: Settings) -> list[str | None]:
    import torch

    if settings.demo or not torch.cuda.is_available():
        return [None] * (settings.workers or 1)
    count = settings.workers or torch.cuda.device_count()
    return [f"cuda:{i % torch.cuda.device_count()}" for i in range(count)]


class WorkerPool:
    def __init__(self, settings: Settings, store: TaskStore):
        self.settings = settings
        self.store = store
        self.devices = worker_devices(settings)
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, tuple[str, multiprocessing.Process]] = {}
        self._failures = [0] * len(self.devices)

    @property
    def worker_ids(self) -> list[str]:
        return [worker_id for worker_id, _ in self._processes.values()]

    def start(self) -> None:
        requeued = self.store.requeue_node(self.settings.max_attempts, self.settings.node)
        if requeued:
            log.warning("requeued %d task(s) left running by this node's previous workers", len(requeued))
        self._remove_scratch("*")  # encodes cut short when this node's previous workers died
        for slot in range(len(self.devices)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        from .worker import worker_main  # the engine and torch: only where workers run, not on an API node

        worker_id = f"{self.settings.node}/worker{slot}-{uuid.uuid4().hex[:8]}"  # requeue_node finds it by the prefix
        process = self._context.Process(
            target=worker_main,
            args=(worker_id, self.settings.model_dump_json(), self.devices[slot], os.getpid()),
            name=worker_id,
            daemon=True,
        )
        process.start()
        self._processes[slot] = (worker_id, process)
        log.info("started %s (pid %s) on %s", worker_id, process.pid, self.devices[slot] or "cpu")

    async def watch(self) -> None:
        """Requeue the tasks of dead workers and expired leases; restart dead workers with a growing back-off; touch
        the live workers' rows."""
        last_heartbeat = 0.0
        while True:
            for slot, (worker_id, process) in list(self._processes.items()):
                if process.is_alive():
                    continue
                requeued = await asyncio.to_thread(self.store.requeue_owned, self.settings.max_attempts, worker_id)
                self._remove_scratch(worker_id)
                await asyncio.to_thread(
                    self.store.worker_state, worker_id, process.pid or 0, "stopped", f"exit code {process.exitcode}"
                )
                log.warning("%s exited with %s; requeued tasks %s", worker_id, process.exitcode, requeued)
                delay = RESTART_BACKOFF_SECONDS[min(self._failures[slot], len(RESTART_BACKOFF_SECONDS) - 1)]
                self._failures[slot] += 1
                del self._processes[slot]
                asyncio.get_running_loop().call_later(delay, self._spawn, slot)
            await asyncio.to_thread(self.store.requeue_expired, self.settings.max_attempts)
            if time.monotonic() - last_heartbeat >= HEARTBEAT_SECONDS:
                await asyncio.to_thread(self.store.touch_workers, self.worker_ids)
                last_heartbeat = time.monotonic()
            await asyncio.sleep(1)

    def _remove_scratch(self, worker_id: str) -> None:
        """Remove the scratch files of a worker's unfinished encodes (every worker's for "*")."""
        for partial in self.settings.scratch_dir.glob(scratch_file(self.settings, worker_id, "*").name):
            partial.unlink(missing_ok=True)

    def stop(self) -> None:
        for _, process in self._processes.values():
            process.terminate()
        for _, process in self._processes.values():
            process.join(10)
            if process.is_alive():
                process.kill()
