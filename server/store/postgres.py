"""The Postgres task store: several hosts sharing one database (`LTX_DATABASE_URL=postgresql://...`).

psycopg 3 with a connection pool per process. Claims lock the row they take and skip rows other claimers hold
(`FOR UPDATE SKIP LOCKED`), so any number of workers on any number of hosts each get a different task; leases and
every other timestamp come from the database's clock (`clock_timestamp()`). A submitted or requeued task sends
`NOTIFY ltx_tasks`; an idle worker waits on `LISTEN ltx_tasks`, with its timeout as a slow poll in case a notification
is lost (e.g. while the worker reconnects).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .sql import SqlTaskStore, Statements, schema_v3, schema_v4, split_statements

CHANNEL = "ltx_tasks"
POOL_SIZE = 8
"""Connections per process at most (the API's threads, or a worker and its heartbeat)."""
MIGRATION_LOCK = 7_412_011
"""The advisory lock key that serialises schema migrations of nodes starting at once."""
SUBMIT_LOCK = 7_412_012
"""The first half of the advisory lock key that serialises one API key's submissions (the second: its hash)."""

SCHEMA_V1 = """
CREATE TABLE tasks (
    id BIGSERIAL PRIMARY KEY,                      -- claim order
    key_id TEXT NOT NULL,
    task_uuid TEXT NOT NULL,
    task_type TEXT NOT NULL,
    request TEXT NOT NULL,                         -- the task as the client sent it (getTaskDetails), JSON
    job TEXT NOT NULL,                             -- the validated job the worker runs, JSON
    status TEXT NOT NULL DEFAULT 'queued',         -- preparing | queued | running | succeeded | failed | cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,                              -- the worker id, NODE/workerN-...
    lease_expires DOUBLE PRECISION,                -- Unix seconds, on the database's clock
    error_code TEXT,                               -- an ErrorKind value
    error_message TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    session_uuid TEXT,                             -- the WebSocket session that submitted it, for replay
    reported INTEGER NOT NULL DEFAULT 0,           -- 1: its failure or cancellation was sent to that session
    UNIQUE (key_id, task_uuid)
);
CREATE INDEX tasks_by_status ON tasks (status, id);
CREATE INDEX tasks_by_session ON tasks (session_uuid) WHERE session_uuid IS NOT NULL;
CREATE TABLE results (
    task_id BIGINT NOT NULL REFERENCES tasks (id),
    idx INTEGER NOT NULL,
    video_uuid TEXT NOT NULL UNIQUE,
    seed BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'processing',     -- processing | success
    progress INTEGER NOT NULL DEFAULT 0,
    stage TEXT,                                    -- the stage of ltx_runtime.progress.STAGES running now
    file_name TEXT,
    gpu_seconds DOUBLE PRECISION,
    cost DOUBLE PRECISION,
    expires_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    reported INTEGER NOT NULL DEFAULT 0,           -- 1: this success was sent to the task's session
    preview TEXT,                                  -- the live preview while denoising: JSON {image, step, steps}
    PRIMARY KEY (task_id, idx)
);
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES tasks (id),
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,                            -- webhook | upload
    url TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',         -- pending | sending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    UNIQUE (task_id, idx, kind)
);
CREATE TABLE images (
    image_uuid TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    pid INTEGER,
    state TEXT NOT NULL,                           -- starting | ready | failed | stopped
    detail TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    memory_profile TEXT,                           -- where the worker's engine keeps its weights
    memory_budget BIGINT                           -- GPU bytes a request may plan to use (NULL: no limit)
)
"""
# Version 2, as on SQLite: deliveries are claimed under a lease by one node (claimed_by is its node id); listTasks
# reads by key.
SCHEMA_V2 = """
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claim_expires DOUBLE PRECISION;
CREATE INDEX deliveries_by_state ON deliveries (state, id);
UPDATE deliveries SET state = 'pending' WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS tasks_by_key ON tasks (key_id, task_type, id)
"""


def _schema(script: str):
    def migrate(db: Statements) -> None:
        for statement in split_statements(script):
            db.run(statement)

    return migrate


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # the shared statements use no literal ? or %


class PostgresTaskStore(SqlTaskStore):
    NOW = "extract(epoch FROM clock_timestamp())::float8"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    FOR_UPDATE = " FOR UPDATE"
    RESULTS_JSON = "json_agg(json_build_object({fields}))::text"
    MIGRATIONS = [_schema(SCHEMA_V1), _schema(SCHEMA_V2), schema_v3("DOUBLE PRECISION", "BIGINT"),
                  schema_v4("DOUBLE PRECISION")]  # fmt: skip
    integrity_error = psycopg.errors.UniqueViolation
    errors = (psycopg.Error,)  # the pool's PoolTimeout included

    def __init__(self, url: str):
        self.url = url
        self._pool = ConnectionPool(
            url, min_size=1, max_size=POOL_SIZE, kwargs={"autocommit": True, "row_factory": dict_row}, open=True,
            name="ltx-task-store",
        )  # fmt: skip
        self._listener: psycopg.Connection | None = None
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _run(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        with self._pool.connection() as connection:
            return _Connection(connection).run(sql, args)

    @contextmanager
    def _transaction(self):
        with self._pool.connection() as connection, connection.transaction():
            yield _Connection(connection)

    def check(self) -> None:
        """Nothing to check: a Postgres that cannot take writes says so in the statement that fails."""

    def _lock_schema(self, db: Statements) -> None:
        db.run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def _lock_key(self, db: Statements, key_id: str) -> None:
        db.run("SELECT pg_advisory_xact_lock(CAST(? AS INTEGER), hashtext(?))", (SUBMIT_LOCK, key_id))

    def _work_queued(self, db: Statements) -> None:
        db.run(f"NOTIFY {CHANNEL}")  # sent when the transaction commits

    def wait_for_work(self, timeout: float) -> None:
        """Return when a task was queued anywhere (NOTIFY), or after `timeout` seconds (the slow poll)."""
        if self._listener is None or self._listener.closed:
            self._listener = psycopg.connect(self.url, autocommit=True)
            self._listener.execute(f"LISTEN {CHANNEL}")
            return  # a task queued before LISTEN took effect is found by the caller's next claim
        try:
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.OperationalError:
            self._listener.close()  # reconnected at the next wait

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._pool.close()


class _Connection:
    def __init__(self, connection: psycopg.Connection):
        self.connection = connection

    def run(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        cursor = self.connection.execute(_placeholders(sql), args)
        return cursor.fetchall() if cursor.description else []

    def run_many(self, sql: str, rows: list[tuple]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(_placeholders(sql), rows)
