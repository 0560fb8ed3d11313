"""The task store: the task row is the source of truth; there is no second queue.

`TaskStore` is the interface the server and the workers use; `SQLiteTaskStore` implements it for one box (WAL mode,
one connection per thread and process). A Postgres backend implements the same methods for several hosts: `claim`
becomes `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`, and leases are renewed by the same
heartbeat (architecture.md, scale-out).

Lifecycle of a task: [preparing (the server fetches its first-frame image) ->] queued -> running (a worker holds a
lease and renews it) -> succeeded | failed; a task that has not finished can be cancelled at any point (a running one's
worker sees it at its next denoising step and stops). A task whose lease runs out (its worker died, or the whole
server did) goes back to queued and runs again, up to `max_attempts`; results already finished are kept, so each
result is produced exactly once. Each result has its own
row with a videoUUID allocated at submission, so `getResponse` can name it while it is still processing.

The store speaks the runtime's own job type (a JSON dict of `server.jobs.Job`) and error kinds (`ErrorKind` values in
`error_code`); it knows no contract. A task submitted over a WebSocket session remembers that session, and each result
(or failure) is marked once it has been reported to it, so that a client resuming the session gets what finished while
it was away, once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,          -- claim order
    key_id TEXT NOT NULL,
    task_uuid TEXT NOT NULL,
    task_type TEXT NOT NULL,
    request TEXT NOT NULL,                         -- the task as the client sent it (getTaskDetails)
    job TEXT NOT NULL,                             -- the validated job the worker runs
    status TEXT NOT NULL DEFAULT 'queued',         -- preparing | queued | running | succeeded | failed | cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires REAL,
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
    memory_budget INTEGER                          -- GPU bytes a request may plan to use; NULL: no limit
);
"""
# Columns added since the first release: (table, column, definition) for stores written before them.
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
UNFINISHED = ("preparing", "queued", "running")


class DuplicateTask(Exception):
    """This API key already submitted a task with this taskUUID."""


class LeaseLost(Exception):
    """The worker no longer holds this task (its lease ran out and the task went to someone else)."""


@dataclass
class ResultRecord:
    index: int
    video_uuid: str
    seed: int
    status: str
    progress: int
    stage: str | None
    file_name: str | None
    gpu_seconds: float | None
    cost: float | None
    reported: bool = False
    preview: dict | None = None
    """The latest live preview while denoising: {"image": a PNG data URI, "step": stage-1 steps done, "steps": stage-1
    steps} (ltx_runtime/preview.py)."""


@dataclass
class TaskRecord:
    id: int
    key_id: str
    task_uuid: str
    task_type: str
    request: dict[str, Any]
    job: dict[str, Any]
    status: str
    attempts: int
    error_code: str | None
    error_message: str | None
    results: list[ResultRecord]
    session_uuid: str | None = None
    reported: bool = False
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class DeliveryRecord:
    id: int
    task_id: int
    index: int
    kind: str
    url: str


class TaskStore(Protocol):
    """What the server and the workers need from a task store (SQLiteTaskStore below; Postgres later)."""

    # the server's side
    def submit(self, key_id: str, task_uuid: str, task_type: str, request: dict, job: dict, seeds: list[int],
               status: str = "queued", session_uuid: str | None = None) -> TaskRecord: ...
    def preparing(self) -> list[TaskRecord]: ...
    def prepared(self, task_id: int, job: dict) -> None: ...
    def get(self, key_id: str, task_uuid: str) -> TaskRecord | None: ...
    def get_by_id(self, task_id: int) -> TaskRecord: ...
    def list_tasks(self, key_id: str, task_type: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]: ...
    def queue_position(self, task_id: int) -> int: ...
    def cancel(self, task_id: int) -> str | None: ...
    def unreported(self, key_id: str, session_uuid: str, finished_since: float) -> list[TaskRecord]: ...
    def mark_reported(self, task_id: int, indexes: list[int]) -> None: ...
    def result_by_video(self, video_uuid: str) -> tuple[ResultRecord, float | None] | None: ...
    def pending_count(self, key_id: str | None = None) -> int: ...
    def status_counts(self) -> dict[str, int]: ...
    def finished_durations(self) -> tuple[int, float]: ...
    def expired_files(self, now: float) -> list[tuple[str, str]]: ...
    def forget_file(self, video_uuid: str) -> None: ...
    def put_image(self, key_id: str, image_uuid: str, file_name: str) -> None: ...
    def image_file(self, key_id: str, image_uuid: str) -> str | None: ...
    # the workers' side
    def claim(self, worker_id: str, lease_seconds: float) -> TaskRecord | None: ...
    def renew_lease(self, task_id: int, worker_id: str, lease_seconds: float) -> bool: ...
    def holds(self, task_id: int, worker_id: str) -> bool: ...
    def set_progress(self, task_id: int, index: int, progress: int, stage: str | None = None) -> None: ...
    def set_preview(self, task_id: int, index: int, preview: dict) -> None: ...
    def complete_result(self, task_id: int, worker_id: str, index: int, file_name: str, gpu_seconds: float,
                        cost: float, expires_at: float, deliveries: list[tuple[str, str]]) -> None: ...
    def finish(self, task_id: int, worker_id: str) -> None: ...
    def fail(self, task_id: int, code: str, message: str) -> None: ...
    def requeue_expired(self, max_attempts: int) -> list[int]: ...
    def requeue_owned(self, max_attempts: int, owner: str) -> list[int]: ...
    def requeue_all_running(self, max_attempts: int) -> list[int]: ...
    def release_owned(self, owner: str) -> list[int]: ...
    def worker_state(self, worker_id: str, pid: int, state: str, detail: str = "",
                     memory_profile: str | None = None, memory_budget: int | None = None) -> None: ...
    def workers(self) -> list[dict[str, Any]]: ...
    # the delivery outbox
    def take_deliveries(self) -> list[DeliveryRecord]: ...
    def finish_delivery(self, delivery_id: int, delivered: bool, attempts: int, status: int | None, error: str | None) -> None: ...
    def reset_interrupted_deliveries(self) -> None: ...
    def unsent_deliveries(self) -> int: ...
    def deliveries_of(self, task_id: int) -> list[dict[str, Any]]: ...


class SQLiteTaskStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        with self._connection() as db:
            for table, column, definition in ADDED_COLUMNS:
                if db.execute(f"SELECT 1 FROM sqlite_master WHERE name = '{table}'").fetchone() and column not in {
                    row["name"] for row in db.execute(f"PRAGMA table_info({table})")
                }:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            db.executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; explicit BEGIN below
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    def _transaction(self):
        return _Transaction(self._connection())

    # -- the server's side ----------------------------------------------------------------------------------------

    def submit(self, key_id, task_uuid, task_type, request, job, seeds, status="queued", session_uuid=None) -> TaskRecord:
        with self._transaction() as db:
            try:
                cursor = db.execute(
                    "INSERT INTO tasks (key_id, task_uuid, task_type, request, job, status, created_at, session_uuid)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key_id, task_uuid, task_type, json.dumps(request), json.dumps(job), status, time.time(),
                     session_uuid),
                )
            except sqlite3.IntegrityError:
                raise DuplicateTask(task_uuid) from None
            db.executemany(
                "INSERT INTO results (task_id, idx, video_uuid, seed) VALUES (?, ?, ?, ?)",
                [(cursor.lastrowid, i, str(uuid.uuid4()), seed) for i, seed in enumerate(seeds)],
            )
        return self.get(key_id, task_uuid)

    def get(self, key_id, task_uuid) -> TaskRecord | None:
        row = self._connection().execute(
            "SELECT * FROM tasks WHERE key_id = ? AND task_uuid = ?", (key_id, task_uuid)
        ).fetchone()
        return None if row is None else self._record(row)

    def get_by_id(self, task_id: int) -> TaskRecord:
        return self._record(self._connection().execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone())

    def list_tasks(self, key_id: str, task_type: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]:
        """This key's most recent tasks of one type, newest first, skipping the `offset` newest."""
        rows = self._connection().execute(
            "SELECT * FROM tasks WHERE key_id = ? AND task_type = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (key_id, task_type, limit, offset),
        ).fetchall()
        return [self._record(row) for row in rows]

    def queue_position(self, task_id: int) -> int:
        """How many tasks wait ahead of this one (0: it is next)."""
        return self._connection().execute(
            "SELECT COUNT(*) FROM tasks WHERE status IN ('preparing', 'queued') AND id < ?", (task_id,)
        ).fetchone()[0]

    def cancel(self, task_id: int) -> str | None:
        """Cancel a task that has not finished; returns the status it had, or None when it had finished already.
        A running task's worker notices at its next step (`holds` turns false) and stops."""
        with self._transaction() as db:
            row = db.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None or row["status"] not in UNFINISHED:
                return None
            db.execute(
                "UPDATE tasks SET status = 'cancelled', error_code = 'cancelled', error_message = ?, finished_at = ?,"
                " lease_owner = NULL WHERE id = ?",
                (f"cancelled while {row['status']}", time.time(), task_id),
            )
        return row["status"]

    def unreported(self, key_id: str, session_uuid: str, finished_since: float) -> list[TaskRecord]:
        """Tasks of this session with a finished result or an outcome not yet sent to it, oldest first; results
        finished before `finished_since` are no longer kept for it."""
        rows = self._connection().execute(
            "SELECT * FROM tasks t WHERE key_id = ? AND session_uuid = ? AND ("
            " (status IN ('failed', 'cancelled') AND reported = 0 AND finished_at >= ?)"
            " OR EXISTS (SELECT 1 FROM results r WHERE r.task_id = t.id AND r.status = 'success' AND r.reported = 0"
            "            AND r.finished_at >= ?)) ORDER BY id",
            (key_id, session_uuid, finished_since, finished_since),
        ).fetchall()
        return [self._record(row) for row in rows]

    def mark_reported(self, task_id: int, indexes: list[int]) -> None:
        """These results (and the task's failure, if it has failed) have been sent to the task's session."""
        with self._transaction() as db:
            db.executemany("UPDATE results SET reported = 1 WHERE task_id = ? AND idx = ?", [(task_id, i) for i in indexes])
            db.execute("UPDATE tasks SET reported = 1 WHERE id = ? AND status IN ('failed', 'cancelled')", (task_id,))

    def result_by_video(self, video_uuid: str) -> tuple[ResultRecord, float | None] | None:
        row = self._connection().execute("SELECT * FROM results WHERE video_uuid = ?", (video_uuid,)).fetchone()
        return None if row is None else (self._result(row), row["expires_at"])

    def preparing(self) -> list[TaskRecord]:
        rows = self._connection().execute("SELECT * FROM tasks WHERE status = 'preparing' ORDER BY id").fetchall()
        return [self._record(row) for row in rows]

    def prepared(self, task_id: int, job: dict) -> None:
        """The task's inputs are local now: store its final job and queue it."""
        self._connection().execute(
            "UPDATE tasks SET job = ?, status = 'queued' WHERE id = ? AND status = 'preparing'", (json.dumps(job), task_id)
        )

    def pending_count(self, key_id=None) -> int:
        query = "SELECT COUNT(*) FROM tasks WHERE status IN ('preparing', 'queued', 'running')"
        args: tuple = ()
        if key_id is not None:
            query, args = query + " AND key_id = ?", (key_id,)
        return self._connection().execute(query, args).fetchone()[0]

    def status_counts(self) -> dict[str, int]:
        rows = self._connection().execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
        return {row[0]: row[1] for row in rows}

    def finished_durations(self) -> tuple[int, float]:
        """(count, total seconds from first claim to finish) over finished tasks."""
        row = self._connection().execute(
            "SELECT COUNT(*), COALESCE(SUM(finished_at - started_at), 0) FROM tasks"
            " WHERE status IN ('succeeded', 'failed') AND started_at IS NOT NULL"
        ).fetchone()
        return row[0], row[1]

    def expired_files(self, now: float) -> list[tuple[str, str]]:
        """(video_uuid, file_name) of finished results whose time to live has passed."""
        rows = self._connection().execute(
            "SELECT video_uuid, file_name FROM results WHERE file_name IS NOT NULL AND expires_at < ?", (now,)
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def forget_file(self, video_uuid: str) -> None:
        self._connection().execute("UPDATE results SET file_name = NULL WHERE video_uuid = ?", (video_uuid,))

    # -- images uploaded with imageUpload ---------------------------------------------------------------------

    def put_image(self, key_id: str, image_uuid: str, file_name: str) -> None:
        self._connection().execute(
            "INSERT INTO images (image_uuid, key_id, file_name, created_at) VALUES (?, ?, ?, ?)",
            (image_uuid, key_id, file_name, time.time()),
        )

    def image_file(self, key_id: str, image_uuid: str) -> str | None:
        row = self._connection().execute(
            "SELECT file_name FROM images WHERE image_uuid = ? AND key_id = ?", (image_uuid, key_id)
        ).fetchone()
        return None if row is None else row[0]

    # -- the workers' side ----------------------------------------------------------------------------------------

    def claim(self, worker_id, lease_seconds) -> TaskRecord | None:
        with self._transaction() as db:
            row = db.execute(
                "UPDATE tasks SET status = 'running', lease_owner = ?, lease_expires = ?, attempts = attempts + 1,"
                " started_at = COALESCE(started_at, ?)"
                " WHERE id = (SELECT id FROM tasks WHERE status = 'queued' ORDER BY id LIMIT 1) RETURNING *",
                (worker_id, time.time() + lease_seconds, time.time()),
            ).fetchone()
        return None if row is None else self._record(row)

    def renew_lease(self, task_id, worker_id, lease_seconds) -> bool:
        cursor = self._connection().execute(
            "UPDATE tasks SET lease_expires = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
            (time.time() + lease_seconds, task_id, worker_id),
        )
        return cursor.rowcount == 1

    def holds(self, task_id: int, worker_id: str) -> bool:
        """True while this worker still runs this task (false once it is cancelled or taken away)."""
        row = self._connection().execute(
            "SELECT 1 FROM tasks WHERE id = ? AND lease_owner = ? AND status = 'running'", (task_id, worker_id)
        ).fetchone()
        return row is not None

    def set_progress(self, task_id, index, progress, stage=None) -> None:
        self._connection().execute(
            "UPDATE results SET progress = ?, stage = ? WHERE task_id = ? AND idx = ? AND status = 'processing'",
            (progress, stage, task_id, index),
        )

    def set_preview(self, task_id, index, preview) -> None:
        self._connection().execute(
            "UPDATE results SET preview = ? WHERE task_id = ? AND idx = ? AND status = 'processing'",
            (json.dumps(preview), task_id, index),
        )

    def complete_result(self, task_id, worker_id, index, file_name, gpu_seconds, cost, expires_at, deliveries) -> None:
        """Record one finished result and queue its deliveries, atomically; only while `worker_id` holds the lease."""
        with self._transaction() as db:
            self._check_lease(db, task_id, worker_id)
            db.execute(
                "UPDATE results SET status = 'success', progress = 100, stage = NULL, file_name = ?, gpu_seconds = ?,"
                " cost = ?, expires_at = ?, finished_at = ? WHERE task_id = ? AND idx = ?",
                (file_name, gpu_seconds, cost, expires_at, time.time(), task_id, index),
            )
            db.executemany(
                "INSERT OR IGNORE INTO deliveries (task_id, idx, kind, url) VALUES (?, ?, ?, ?)",
                [(task_id, index, kind, url) for kind, url in deliveries],
            )

    def finish(self, task_id, worker_id) -> None:
        with self._transaction() as db:
            self._check_lease(db, task_id, worker_id)
            db.execute("UPDATE tasks SET status = 'succeeded', finished_at = ?, lease_owner = NULL WHERE id = ?",
                       (time.time(), task_id))

    @staticmethod
    def _check_lease(db: sqlite3.Connection, task_id: int, worker_id: str) -> None:
        row = db.execute("SELECT lease_owner, status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None or row["status"] != "running" or row["lease_owner"] != worker_id:
            raise LeaseLost(task_id)

    def fail(self, task_id, code, message) -> None:
        """Fail a task that has not finished (a cancelled task stays cancelled); `code` is an ErrorKind value."""
        self._connection().execute(
            "UPDATE tasks SET status = 'failed', error_code = ?, error_message = ?, finished_at = ?, lease_owner = NULL"
            " WHERE id = ? AND status IN ('preparing', 'queued', 'running')",
            (code, message, time.time(), task_id),
        )

    def requeue_expired(self, max_attempts: int) -> list[int]:
        """Running tasks whose lease ran out (their worker or the whole server died) go back to the queue."""
        return self._requeue("lease_expires < ?", (time.time(),), max_attempts)

    def requeue_owned(self, max_attempts: int, owner: str) -> list[int]:
        """The running tasks of a worker known to be dead go back to the queue."""
        return self._requeue("lease_owner = ?", (owner,), max_attempts)

    def requeue_all_running(self, max_attempts: int) -> list[int]:
        """At start-up on a single box every running task is an orphan of the previous process."""
        return self._requeue("1 = 1", (), max_attempts)

    def release_owned(self, owner: str) -> list[int]:
        """The running tasks of a worker stopped on purpose (a shutdown) go back to the queue; that attempt does not
        count towards max_attempts."""
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE tasks SET status = 'queued', lease_owner = NULL, attempts = MAX(attempts - 1, 0)"
                " WHERE status = 'running' AND lease_owner = ? RETURNING id",
                (owner,),
            ).fetchall()
        return [row["id"] for row in rows]

    def _requeue(self, condition: str, args: tuple, max_attempts: int) -> list[int]:
        # A task that has already used max_attempts fails instead: something in it kills workers.
        with self._transaction() as db:
            rows = db.execute(f"SELECT id, attempts FROM tasks WHERE status = 'running' AND {condition}", args).fetchall()
            for row in rows:
                if row["attempts"] >= max_attempts:
                    db.execute(
                        "UPDATE tasks SET status = 'failed', error_code = 'worker_lost', lease_owner = NULL,"
                        " error_message = ?, finished_at = ? WHERE id = ?",
                        (f"the worker stopped while running this task, {row['attempts']} times", time.time(), row["id"]),
                    )
                else:
                    db.execute("UPDATE tasks SET status = 'queued', lease_owner = NULL WHERE id = ?", (row["id"],))
        return [row["id"] for row in rows]

    # -- deliveries (the outbox) ----------------------------------------------------------------------------------

    def take_deliveries(self) -> list[DeliveryRecord]:
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE deliveries SET state = 'sending' WHERE state = 'pending' RETURNING id, task_id, idx, kind, url"
            ).fetchall()
        return [DeliveryRecord(row["id"], row["task_id"], row["idx"], row["kind"], row["url"]) for row in rows]

    def finish_delivery(self, delivery_id: int, delivered: bool, attempts: int, status: int | None, error: str | None):
        self._connection().execute(
            "UPDATE deliveries SET state = ?, attempts = attempts + ?, last_status = ?, last_error = ? WHERE id = ?",
            ("delivered" if delivered else "failed", attempts, status, error, delivery_id),
        )

    def reset_interrupted_deliveries(self) -> None:
        """Deliveries that were being sent when the process stopped are sent again (receivers dedupe by id)."""
        self._connection().execute("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'")

    def unsent_deliveries(self) -> int:
        """How many deliveries are waiting or being sent (a draining server waits for them, for a while)."""
        query = "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'sending')"
        return self._connection().execute(query).fetchone()[0]

    def deliveries_of(self, task_id: int) -> list[dict[str, Any]]:
        rows = self._connection().execute("SELECT * FROM deliveries WHERE task_id = ? ORDER BY id", (task_id,))
        return [dict(row) for row in rows.fetchall()]

    # -- workers ------------------------------------------------------------------------------------------------

    def worker_state(self, worker_id: str, pid: int, state: str, detail: str = "",
                     memory_profile: str | None = None, memory_budget: int | None = None) -> None:  # fmt: skip
        self._connection().execute(
            "INSERT INTO workers (worker_id, pid, state, detail, updated_at, memory_profile, memory_budget)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (worker_id) DO UPDATE SET pid = excluded.pid, state = excluded.state,"
            " detail = excluded.detail, updated_at = excluded.updated_at,"
            " memory_profile = excluded.memory_profile, memory_budget = excluded.memory_budget",
            (worker_id, pid, state, detail, time.time(), memory_profile, memory_budget),
        )

    def workers(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._connection().execute("SELECT * FROM workers ORDER BY worker_id")]

    # -- rows to records ------------------------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> TaskRecord:
        results = self._connection().execute(
            "SELECT * FROM results WHERE task_id = ? ORDER BY idx", (row["id"],)
        ).fetchall()
        return TaskRecord(
            id=row["id"],
            key_id=row["key_id"],
            task_uuid=row["task_uuid"],
            task_type=row["task_type"],
            request=json.loads(row["request"]),
            job=json.loads(row["job"]),
            status=row["status"],
            attempts=row["attempts"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            results=[self._result(result) for result in results],
            session_uuid=row["session_uuid"],
            reported=bool(row["reported"]),
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )

    @staticmethod
    def _result(row: sqlite3.Row) -> ResultRecord:
        return ResultRecord(
            index=row["idx"],
            video_uuid=row["video_uuid"],
            seed=row["seed"],
            status=row["status"],
            progress=row["progress"],
            stage=row["stage"],
            file_name=row["file_name"],
            gpu_seconds=row["gpu_seconds"],
            cost=row["cost"],
            reported=bool(row["reported"]),
            preview=json.loads(row["preview"]) if row["preview"] else None,
        )


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): takes the write lock up front, so claims never interleave."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, error, traceback) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")
