"""Starts one worker process per GPU (one on the CPU in demo mode), watches them, and restarts the ones that die.

Workers are spawned, not forked (CUDA cannot be forked). When a worker dies, its running task goes straight back to
the queue (leases cover the cases this process cannot see, such as another host's worker).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import uuid

from .settings import Settings
from .tasks import TaskStore
from .worker import worker_main

log = logging.getLogger(__name__)
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)


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
        for slot in range(len(self.devices)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        worker_id = f"worker{slot}-{uuid.uuid4().hex[:8]}"
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
        """Requeue the tasks of dead workers and expired leases; restart dead workers with a growing back-off."""
        while True:
            for slot, (worker_id, process) in list(self._processes.items()):
                if process.is_alive():
                    continue
                requeued = await asyncio.to_thread(self.store.requeue_owned, self.settings.max_attempts, worker_id)
                await asyncio.to_thread(
                    self.store.worker_state, worker_id, process.pid or 0, "stopped", f"exit code {process.exitcode}"
                )
                log.warning("%s exited with %s; requeued tasks %s", worker_id, process.exitcode, requeued)
                delay = RESTART_BACKOFF_SECONDS[min(self._failures[slot], len(RESTART_BACKOFF_SECONDS) - 1)]
                self._failures[slot] += 1
                del self._processes[slot]
                asyncio.get_running_loop().call_later(delay, self._spawn, slot)
            await asyncio.to_thread(self.store.requeue_expired, self.settings.max_attempts)
            await asyncio.sleep(1)

    def stop(self) -> None:
        for _, process in self._processes.values():
            process.terminate()
        for _, process in self._processes.values():
            process.join(10)
            if process.is_alive():
                process.kill()
