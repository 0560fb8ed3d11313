"""The SQLite task store: one box, zero setup (the default, `sqlite:///DATA_DIR/tasks.sqlite3`).

WAL mode, one connection per thread and process; write transactions take the file's write lock up front
(`BEGIN IMMEDIATE`), so claims never interleave. SQLite cannot notify a waiting worker: `wait_for_work` is a short
sleep, and the worker polls.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .sql import SqlTaskStore

POLL_SECONDS = 0.2
"""How often an idle worker looks for work (SQLite cannot wake it)."""


class SQLiteTaskStore(SqlTaskStore):
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    SKIP_LOCKED = ""
    FOR_UPDATE = ""
    RESULTS_JSON = "json_group_array(json_object({fields}))"
    COLUMN_TYPES = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER", "real": "REAL"}
    LIST_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
    integrity_error = sqlite3.IntegrityError
    errors = (sqlite3.Error,)

    def __init__(self, path: Path, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        """How long a statement waits for another process's write lock before it fails (LTX_SQLITE_BUSY_TIMEOUT)."""
        self._local = threading.local()
        self._open_schema(str(self.path.resolve()))
        self._identity = self._file_identity()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def check(self) -> None:
        """Raise unless the database file is still the one opened: one deleted or replaced under a running server
        would take tasks that are gone at its next start."""
        if self._file_identity() != self._identity:
            raise sqlite3.OperationalError(
                f"the task database {self.path} was deleted or replaced while the server ran"
            )

    def _connection(self) -> _Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # Once the file is made, a connection never makes another (an empty one, if it was deleted meanwhile).
            mode = "rw" if getattr(self, "_identity", None) else "rwc"
            db = sqlite3.connect(f"file:{quote(str(self.path))}?mode={mode}", uri=True, timeout=self.busy_timeout,
                                 isolation_level=None)  # autocommit; explicit BEGIN below
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            connection = self._local.connection = _Connection(db)
        return connection

    def _run(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        return self._connection().run(sql, args)

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock up front, so claims never interleave."""
        connection = self._connection()
        connection.db.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.db.execute("ROLLBACK")
            raise
        connection.db.execute("COMMIT")

    def wait_for_work(self, timeout: float) -> None:
        time.sleep(min(timeout, POLL_SECONDS))

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.db.close()
            self._local.connection = None


class _Connection:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def run(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.db.execute(sql, args).fetchall()]

    def run_many(self, sql: str, rows: list[tuple]) -> None:
        self.db.executemany(sql, rows)
