"""The Postgres task store: several hosts sharing one database (`LTX_DATABASE_URL=postgresql://...`).

psycopg 3 with a connection pool per process. Claims lock the row they take and skip rows other claimers hold
(`FOR UPDATE SKIP LOCKED`), so any number of workers on any number of hosts each get a different task; leases and
every other timestamp come from the database's clock (`clock_timestamp()`). A submitted or requeued task sends
`NOTIFY ltx_tasks`; an idle worker waits on `LISTEN ltx_tasks`, with its timeout as a slow poll in case a notification
is lost (e.g. while the worker reconnects).
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .sql import SqlTaskStore, Statements

CHANNEL = "ltx_tasks"
POOL_SIZE = 8
"""Connections per process at most (the API's threads, or a worker and its heartbeat)."""
SCHEMA_LOCK = 7_412_011
"""The advisory lock key that serialises the schema's creation by nodes starting at once."""
SUBMIT_LOCK = 7_412_012
"""The first half of the advisory lock key that serialises one API key's submissions (the second: its hash)."""


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # the shared statements use no literal ? or %


class PostgresTaskStore(SqlTaskStore):
    NOW = "extract(epoch FROM clock_timestamp())::float8"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    FOR_UPDATE = " FOR UPDATE"
    RESULTS_JSON = "json_agg(json_build_object({fields}))::text"
    COLUMN_TYPES = {"id": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "real": "DOUBLE PRECISION"}
    LIST_TABLES = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
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
            self._open_schema(_without_password(url))
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
        db.run("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))

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


def _without_password(url: str) -> str:
    """The URL as an error may show it: its password (`user:PASSWORD@`, `password=...`) masked."""
    return re.sub(r"(password=)[^&]*", r"\1***", re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url))


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
