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

from .sql import SqlTaskStore, Statements, schema_v3, schema_v4, split_statements

POLL_SECONDS = 0.2
"""How often an idle worker looks for work (SQLite cannot wake it)."""

# Version 1: the schema before versioning existed. A file written before then has no schema_version table and may lack
# the columns added over time (ADDED_COLUMNS): migration 1 adds those and creates whatever is missing.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,          -- claim order
    key_id TEXT NOT NULL,
    task_uuid TEXT NOT NULL,
    task_type TEXT NOT NULL,
    request TEXT NOT NULL,                         -- the task as the client sent it (getTaskDetails)
    job TEXT NOT NULL,                             -- the validated job the worker runs
    status TEXT NOT NULL DEFAULT 'queued',         -- preparing | queued | running | succeeded | failed | cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,                              -- the worker id, NODE/workerN-...
    lease_expires REAL,                            -- Unix seconds, on the database's clock
    error_code TEXT,                               -- an ErrorKind value
    error_message TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    session_uuid TEXT,                             -- the WebSocket session that submitted it, for replay
    reported INTEGER NOT NULL DEFAULT 0,           -- 1: its failure or cancellation was sent to that session
    UNIQUE (key_id, task_uuid)
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, id);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_uuid) WHERE session_uuid IS NOT NULL;
CREATE TABLE IF NOT EXISTS results (
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    idx INTEGER NOT NULL,
    video_uuid TEXT NOT NULL UNIQUE,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'processing',     -- processing | success
    progress INTEGER NOT NULL DEFAULT 0,
    stage TEXT,                                    -- the stage of ltx_runtime.progress.STAGES running now
    file_name TEXT,
    gpu_seconds REAL,
    cost REAL,
    expires_at REAL,
    finished_at REAL,
    reported INTEGER NOT NULL DEFAULT 0,           -- 1: this success was sent to the task's session
    preview TEXT,                                  -- the live preview while denoising: JSON {image, step, steps}
    PRIMARY KEY (task_id, idx)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,                            -- webhook | upload
    url TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',         -- pending | sending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    UNIQUE (task_id, idx, kind)
);
CREATE TABLE IF NOT EXISTS images (
    image_uuid TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    pid INTEGER,
    state TEXT NOT NULL,                           -- starting | ready | failed | stopped
    detail TEXT,
    updated_at REAL NOT NULL,
    memory_profile TEXT,                           -- where the worker's engine keeps its weights
    memory_budget INTEGER                          -- GPU bytes a request may plan to use (NULL: no limit)
)
"""
# Columns added before versioning: (table, column, definition), for files written before them.
ADDED_COLUMNS = [
    ("workers", "memory_profile", "TEXT"),
    ("workers", "memory_budget", "INTEGER"),
    ("tasks", "session_uuid", "TEXT"),
    ("tasks", "reported", "INTEGER NOT NULL DEFAULT 0"),
    ("results", "finished_at", "REAL"),
    ("results", "reported", "INTEGER NOT NULL DEFAULT 0"),
    ("results", "stage", "TEXT"),
    ("results", "preview", "TEXT"),
]
# Version 2: deliveries are claimed under a lease by one node (claimed_by is its node id); listTasks reads by key.
# Deliveries left 'sending' before then have no claim: they are sent again, as a restart did until then.
SCHEMA_V2 = """
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claim_expires REAL;
CREATE INDEX deliveries_by_state ON deliveries (state, id);
UPDATE deliveries SET state = 'pending' WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS tasks_by_key ON tasks (key_id, task_type, id)
"""


def _schema_v1(db: Statements) -> None:
    for table, column, definition in ADDED_COLUMNS:
        if db.run("SELECT 1 AS found FROM sqlite_master WHERE name = ?", (table,)) and column not in {
            row["name"] for row in db.run(f"PRAGMA table_info({table})")
        }:
            db.run(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    for statement in split_statements(SCHEMA_V1):
        db.run(statement)


def _schema_v2(db: Statements) -> None:
    for statement in split_statements(SCHEMA_V2):
        db.run(statement)


class SQLiteTaskStore(SqlTaskStore):
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    SKIP_LOCKED = ""
    FOR_UPDATE = ""
    RESULTS_JSON = "json_group_array(json_object({fields}))"
    MIGRATIONS = [_schema_v1, _schema_v2, schema_v3("REAL", "INTEGER"), schema_v4("REAL")]
    integrity_error = sqlite3.IntegrityError
    errors = (sqlite3.Error,)

    def __init__(self, path: Path, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        """How long a statement waits for another process's write lock before it fails (LTX_SQLITE_BUSY_TIMEOUT)."""
        self._local = threading.local()
        self._migrate()
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
