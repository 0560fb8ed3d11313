"""The Runware wire envelope: `{"data": [...]}` and/or `{"errors": [...]}`, and contract-shaped errors.

Rules that the official SDKs depend on (shared/docs/runware-contract.md):
- `errors` is never present and empty (the newer Python SDK raises on any `errors` key);
- every error item carries `code` and `message`, and `parameter`, `taskType`, `taskUUID` where they apply;
- a REST reply is HTTP 200 when any task succeeded (a batch may mix data and errors), else the most severe
  status among its errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...tasks.jobs import ErrorKind, TaskError

# The task service's error kinds as Runware codes and the HTTP status of a refusal. A task that failed after it was
# accepted is reported (getResponse) with the same code and HTTP 500; a cancelled one with 400.
ERROR_CODES: dict[ErrorKind, tuple[str, int]] = {
    ErrorKind.INVALID_IMAGE: ("invalidFrameImages", 400),
    ErrorKind.INVALID_AUDIO: ("invalidAudio", 400),
    ErrorKind.TOO_LARGE: ("unsupportedDimensions", 400),
    ErrorKind.QUEUE_FULL: ("rateLimitExceeded", 429),
    ErrorKind.DUPLICATE: ("conflictTaskUUID", 400),
    ErrorKind.NOT_FOUND: ("taskNotFound", 404),
    ErrorKind.FINISHED: ("taskAlreadyFinished", 400),
    ErrorKind.CANCELLED: ("taskCancelled", 400),
    ErrorKind.INVALID_REQUEST: ("invalidParameter", 400),
    ErrorKind.OUT_OF_MEMORY: ("inferenceError", 500),
    ErrorKind.MODEL_UNAVAILABLE: ("modelUnavailable", 500),
    ErrorKind.CHECK_UNAVAILABLE: ("modelUnavailable", 503),
    ErrorKind.CONTENT_FLAGGED: ("nsfwContentDetected", 400),  # a code the official SDKs' error maps know
    ErrorKind.GENERATION_FAILED: ("inferenceError", 500),
    ErrorKind.WORKER_LOST: ("inferenceError", 500),
    ErrorKind.STORAGE_FULL: ("storageFull", 507),
    ErrorKind.SHUTTING_DOWN: ("serviceUnavailable", 503),
    ErrorKind.STORE_UNAVAILABLE: ("serviceUnavailable", 503),
}


ROUTE_ERROR_CODES = {404: "notFound", 405: "methodNotAllowed"}


def route_error_body(status: int, message: str, parameter: str) -> dict[str, Any]:
    """An unknown path (404), a wrong method (405), a malformed query parameter (400)."""
    return {"errors": [{"code": ROUTE_ERROR_CODES.get(status, "invalidParameter"), "message": message,
                        "parameter": parameter}]}  # fmt: skip


class ContractError(Exception):
    """A task that cannot be carried out; becomes one item of `errors[]`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        parameter: str | None = None,
        status: int = 400,
        task_type: str | None = None,
        task_uuid: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter
        self.status = status
        self.task_type = task_type
        self.task_uuid = task_uuid

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            item["parameter"] = self.parameter
        if self.task_type is not None:
            item["taskType"] = self.task_type
        if self.task_uuid is not None:
            item["taskUUID"] = self.task_uuid
        return item


def contract_error(error: TaskError, parameter: str | None = None) -> "ContractError":
    """A task service refusal in Runware's terms; `parameter` overrides the service's name for the field."""
    code, status = ERROR_CODES[error.kind]
    return ContractError(code, error.message, parameter=parameter or error.parameter, status=status)


def failure_error(kind: str | None, message: str | None, task_type: str, task_uuid: str) -> "ContractError":
    """A task that failed or was cancelled after it was accepted, as getResponse and session replay report it."""
    error_kind = ErrorKind.of(kind)
    code, _ = ERROR_CODES[error_kind]
    if error_kind is ErrorKind.INVALID_IMAGE:
        message = f"inputs.frameImages: {message}"
    elif error_kind is ErrorKind.INVALID_AUDIO:
        message = f"inputs.audio: {message}"
    elif error_kind is ErrorKind.CANCELLED:
        message = f"the task was cancelled ({message}); it has no results"
    return ContractError(
        code, message or "generation failed",
        status=400 if error_kind in (ErrorKind.CANCELLED, ErrorKind.CONTENT_FLAGGED) else 500,
        task_type=task_type, task_uuid=task_uuid,
    )  # fmt: skip


@dataclass
class Reply:
    """What one request (a REST body or a WebSocket frame) gets back."""

    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ContractError] = field(default_factory=list)

    def extend(self, other: "Reply") -> None:
        self.data.extend(other.data)
        self.errors.extend(other.errors)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.data or not self.errors:
            body["data"] = self.data
        if self.errors:
            body["errors"] = [error.item() for error in self.errors]
        return body

    @property
    def http_status(self) -> int:
        if self.data:
            return 200
        return max((error.status for error in self.errors), default=200)
