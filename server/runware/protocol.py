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
