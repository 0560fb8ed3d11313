"""A test aid: a fault injected into a worker at one stage of a generation, inert unless LTX_TEST_FAULT is set.

LTX_TEST_FAULT="ACTION:STAGE[:ATTEMPTS]" acts at the first progress report of STAGE (a name of
ltx_runtime.progress.STAGES) in the task's first ATTEMPTS attempts (default: every attempt), of every task or, when LTX_TEST_FAULT_TASK is set, of
the task with that taskUUID only:
- kill: the worker SIGKILLs itself (a crash at that stage);
- hang: the worker loops forever without reporting progress and ignores SIGTERM (as a thread stuck inside a CUDA
  kernel would);
- pause: the worker sleeps 5 s (LTX_TEST_FAULT_SECONDS), then carries on (time for a test to act, e.g. to kill the
  worker's ffmpeg).
The fault-injection tests (tests/e2e/test_faults_*.py) set it; nothing else should.
"""

from __future__ import annotations

import logging
import os
import signal
import time

PAUSE_SECONDS = 5.0
"""The pause's default length."""


def inject_fault(stage: str, attempt: int, task_uuid: str) -> None:
    """Called by the worker at the first report of each stage of each attempt."""
    spec = os.environ.get("LTX_TEST_FAULT")
    if not spec:
        return
    action, fault_stage, *attempts = spec.split(":")
    if fault_stage != stage or (attempts and attempt > int(attempts[0])):
        return
    if os.environ.get("LTX_TEST_FAULT_TASK", task_uuid) != task_uuid:
        return
    logging.getLogger(__name__).warning("test fault: %s at %s (attempt %d)", action, stage, attempt)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.1)
    elif action == "pause":  # short sleeps, like a generation's steps: a signal's handler runs within 0.1 s
        for _ in range(round(float(os.environ.get("LTX_TEST_FAULT_SECONDS", PAUSE_SECONDS)) / 0.1)):
            time.sleep(0.1)
    else:
        raise ValueError(f"LTX_TEST_FAULT: unknown action {action!r}")
