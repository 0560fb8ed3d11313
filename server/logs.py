"""Operator logs: one format for the server and its worker processes, and one line per task event.

`setup_logging` is called first thing in the server and in every spawned worker, so both write the same format
(`text`, or `json` for log shippers) at the same level. `task_event` writes the line an operator greps for: every
event of a task (accepted, started, progress, result, finished, failed, cancelled, delivered, ...) carries its
taskUUID, so `grep TASK_UUID server.log` tells the task's whole life. API keys never appear, only their key id.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TASK_LOGGER = "ltx_runtime.tasks"
_QUIET_LOGGERS = ("httpx", "httpcore", "diffusers", "transformers", "huggingface_hub", "PIL", "multipart")


class _TextFormatter(logging.Formatter):
    """`2026-11-30T04:40:01.123Z INFO server ltx_runtime.tasks: message key=value ...`"""

    def __init__(self, process_name: str):
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in getattr(record, "fields", {}).items() if key != "event"}
        line = f"{_timestamp(record)} {record.levelname} {self.process_name} {_logger(record)}: {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(_TextFormatter):
    """One JSON object per line: time, level, process, logger, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _timestamp(record), "level": record.levelname, "process": self.process_name,
                "logger": _logger(record), "message": record.getMessage(), **getattr(record, "fields", {})}  # fmt: skip
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup_logging(level: str = "INFO", log_format: LogFormat = "text", process_name: str = "server") -> None:
    """Send every logger of this process to stderr in one format; no progress bars (they are for terminals)."""
    # Set before the libraries that read them are imported (a spawned worker inherits the environment).
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter((_JsonFormatter if log_format == "json" else _TextFormatter)(process_name))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)  # Python warnings in the same format
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own handlers would use another format
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def task_event(event: str, task_uuid: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event of a task: `task <event> taskUUID=... field=...`; fields that are None are left out."""
    fields = {"event": event, "taskUUID": task_uuid, **{key: value for key, value in fields.items() if value is not None}}
    logging.getLogger(TASK_LOGGER).log(level, "task %s", event, extra={"fields": fields})


def _logger(record: logging.LogRecord) -> str:
    return "uvicorn" if record.name == "uvicorn.error" else record.name  # uvicorn's general logger, not an error


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")  # seconds to the hundredth; 2.0 as 2
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text
