"""The task store: `open_store(url)` opens the one the settings name; `records` holds the records and the `TaskStore`
protocol everything else speaks, `schema` the one schema, `sql` the SQL both backends share, `sqlite` and `postgres` the
backends."""

from __future__ import annotations

from pathlib import Path

from .records import TaskStore


def open_store(url: str, sqlite_busy_timeout: float = 30.0) -> TaskStore:
    """`sqlite:///PATH` (a relative path; `sqlite:////abs/path` for an absolute one) or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteTaskStore

        return SQLiteTaskStore(Path(url.removeprefix("sqlite:///")), sqlite_busy_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresTaskStore

        return PostgresTaskStore(url)
    raise ValueError(f"unsupported task store URL {url.split('://')[0]}://...: use sqlite:///PATH or postgresql://...")
