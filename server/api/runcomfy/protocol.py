"""RunComfy's wire shapes: the submit reply, the request states, and errors with RunComfy's numeric codes.

Codes from docs.runcomfy.com/model-apis/error-codes: 400001 InvalidResourceIdentifier, 403001 PermissionDeniedError,
404001 ResourceNotFound, 400002 InsufficientResources, 400004 UserAccountError. RunComfy does not publish its error body
or codes for a bad parameter, a full queue, a failed run or a content check; this server's choices (400003, 408001,
415001, 429001, 409001, 422001, 500001, 500002, 503001, 503002, 503003, 507001, 405001)
follow the same pattern and are documented in the README. Every error is `{"error": {code, name, message, parameter?}}`.
"""

from __future__ import annotations

from typing import Any

from ...store.records import TaskStatus
from ...tasks.jobs import ErrorKind, TaskError
from ..bodies import shown

# The task service's error kinds as (code, name, HTTP status).
ERROR_CODES: dict[ErrorKind, tuple[int, str, int]] = {
    ErrorKind.INVALID_IMAGE: (400003, "InvalidParameter", 400),
    ErrorKind.INVALID_AUDIO: (400003, "InvalidParameter", 400),  # not sent by RunComfy's schema; kept complete
    ErrorKind.TOO_LARGE: (400003, "InvalidParameter", 400),
    ErrorKind.QUEUE_FULL: (429001, "TooManyRequests", 429),
    ErrorKind.DUPLICATE: (400003, "InvalidParameter", 400),
    ErrorKind.NOT_FOUND: (404001, "ResourceNotFound", 404),
    ErrorKind.FINISHED: (409001, "RequestAlreadyFinished", 409),
    ErrorKind.CANCELLED: (409001, "RequestCancelled", 409),
    ErrorKind.INVALID_REQUEST: (400003, "InvalidParameter", 400),
    ErrorKind.OUT_OF_MEMORY: (500001, "GenerationFailed", 500),
    ErrorKind.MODEL_UNAVAILABLE: (500002, "ModelUnavailable", 500),
    ErrorKind.CHECK_UNAVAILABLE: (503001, "ContentCheckUnavailable", 503),
    ErrorKind.CONTENT_FLAGGED: (422001, "ContentFlagged", 422),
    ErrorKind.GENERATION_FAILED: (500001, "GenerationFailed", 500),
    ErrorKind.WORKER_LOST: (500001, "GenerationFailed", 500),
    ErrorKind.STORAGE_FULL: (507001, "StorageFull", 507),
    ErrorKind.SHUTTING_DOWN: (503002, "ServerShuttingDown", 503),
    ErrorKind.STORE_UNAVAILABLE: (503003, "StoreUnavailable", 503),
}
# The store's task states as RunComfy request states ("failed" is this server's: RunComfy publishes no failed state).
STATES: dict[TaskStatus, str] = {
    TaskStatus.PREPARING: "in_queue",
    TaskStatus.QUEUED: "in_queue",
    TaskStatus.RUNNING: "in_progress",
    TaskStatus.SUCCEEDED: "completed",
    TaskStatus.CANCELLED: "cancelled",
    TaskStatus.FAILED: "failed",
}


class RunComfyError(Exception):
    def __init__(self, code: int, name: str, message: str, status: int, parameter: str | None = None):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message
        self.status = status
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        return {"error": error_object(self.code, self.name, self.message, self.parameter)}


def error_object(code: int, name: str, message: str, parameter: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "name": name, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    return error


PATH_PREFIXES = ("/v1/models/", "/v1/requests")
"""The paths whose errors are RunComfy's, also where no route answers (server/api/http_errors.py)."""
ROUTE_ERROR_CODES = {404: (404001, "ResourceNotFound"), 405: (405001, "MethodNotAllowed")}


def route_error_body(status: int, message: str, parameter: str) -> dict[str, Any]:
    """An unknown path (404), a wrong method (405), a malformed query parameter (400)."""
    code, name = ROUTE_ERROR_CODES.get(status, (400003, "InvalidParameter"))
    return {"error": error_object(code, name, message, parameter)}


def invalid_parameter(parameter: str, message: str) -> RunComfyError:
    return RunComfyError(400003, "InvalidParameter", message, 400, parameter)


def unknown_model(path: str, offered: list[str]) -> RunComfyError:
    return RunComfyError(
        400001, "InvalidResourceIdentifier", f"unknown model {shown(path)}; this server offers {', '.join(offered)}", 400,
        "model",
    )


def account_error(message: str) -> RunComfyError:
    return RunComfyError(400004, "UserAccountError", message, 401, "Authorization")


def from_task_error(error: TaskError, parameter: str | None = None) -> RunComfyError:
    code, name, status = ERROR_CODES[error.kind]
    return RunComfyError(code, name, error.message, status, parameter or error.parameter)


def failure_object(kind: str | None, message: str | None) -> dict[str, Any]:
    """The `error` of a request that failed after it was accepted."""
    error_kind = ErrorKind.of(kind)
    code, name, _ = ERROR_CODES[error_kind]
    return error_object(code, name, message or "generation failed")
