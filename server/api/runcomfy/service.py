"""The RunComfy requests on top of the task service: submit, status, result, cancel."""

from __future__ import annotations

import uuid
from typing import Any

from ...store.records import TaskRecord, TaskStatus
from ...tasks.jobs import ErrorKind, Job, TaskError
from ...tasks.service import TaskService
from .protocol import STATES, RunComfyError, failure_object, from_task_error
from .validation import resolve_model, validate_submit

TASK_TYPE = "runcomfy"
"""The task type RunComfy requests have in the store (the other APIs' tasks are not visible here)."""


class RunComfyService:
    def __init__(self, tasks: TaskService, demo: bool):
        self.tasks = tasks
        self.demo = demo

    def submit(self, key_id: str, model_path: str, mode: str, body: Any) -> dict[str, Any]:
        spec = resolve_model(model_path, mode, self.demo)
        job = validate_submit(body, spec, mode)
        request_id = str(uuid.uuid4())
        request = {"model": f"{model_path}/{mode}", "input": body}
        try:
            self.tasks.submit(key_id, request_id, TASK_TYPE, request, job)
        except TaskError as error:
            parameter = {
                ErrorKind.INVALID_IMAGE: "image_url", ErrorKind.TOO_LARGE: "resolution", ErrorKind.QUEUE_FULL: "Authorization",
            }.get(error.kind)  # fmt: skip
            raise from_task_error(error, parameter) from None
        note = self.tasks.demo_note(job)
        return {"request_id": request_id, **self._urls(request_id), **({"warning": note} if note else {})}

    def status(self, key_id: str, request_id: str) -> dict[str, Any]:
        return self._status(self._find(key_id, request_id))

    def recent(self, key_id: str, limit: int) -> dict[str, Any]:
        """This key's latest requests, newest first, each as its status (an extension of this server)."""
        return {"requests": [self._status(record) for record in self.tasks.list_tasks(key_id, TASK_TYPE, limit)]}

    def _status(self, record: TaskRecord) -> dict[str, Any]:
        request_id = record.task_uuid
        body: dict[str, Any] = {"request_id": request_id, "status": STATES[record.status]}
        if body["status"] == "in_queue":
            body["queue_position"] = self.tasks.queue_position(record)
        if record.status == TaskStatus.RUNNING:
            body["progress"] = min(result.progress for result in record.results)  # an extension: 0-100
        if record.status == TaskStatus.FAILED:
            body["error"] = failure_object(record.error_code, record.error_message)
        elif body["status"] in ("in_queue", "in_progress") and (note := self.tasks.demo_note(Job.from_record(record))):
            body["warning"] = note  # an extension, as progress is
        return {**body, **self._urls(request_id)}

    def result(self, key_id: str, request_id: str) -> dict[str, Any]:
        """The output once completed; the current state (as status gives it) before that."""
        record = self._find(key_id, request_id)
        if record.status != TaskStatus.SUCCEEDED:
            return self.status(key_id, request_id)
        (result,) = record.results
        return {"request_id": request_id, "status": "completed", "output": {"video": self.tasks.media_url(result)}}

    def cancel(self, key_id: str, request_id: str) -> dict[str, Any]:
        """Cancels a queued request and, beyond RunComfy, a running one (it stops within one denoising step)."""
        self._find(key_id, request_id)
        try:
            self.tasks.cancel(key_id, request_id)
        except TaskError as error:
            raise from_task_error(error) from None
        return self.status(key_id, request_id)

    def _find(self, key_id: str, request_id: str) -> TaskRecord:
        try:
            record = self.tasks.get(key_id, request_id)
        except TaskError as error:
            raise from_task_error(error, "request_id") from None
        if record.task_type != TASK_TYPE:  # a task of another API on the same key
            raise RunComfyError(404001, "ResourceNotFound", f"no request {request_id} for this API key", 404, "request_id")
        return record

    def _urls(self, request_id: str) -> dict[str, str]:
        base = f"{self.tasks.settings.base_url}/v1/requests/{request_id}"
        return {"status_url": f"{base}/status", "result_url": f"{base}/result", "cancel_url": f"{base}/cancel"}
