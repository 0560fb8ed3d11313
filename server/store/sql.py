"""The SQL both task store backends run (`sqlite.py`, `postgres.py`): the `TaskStore` methods, once.

A backend supplies its connections (`_run` outside a transaction, `_transaction` for several statements at once), its
dialect (`NOW`: the database clock in Unix seconds; `SKIP_LOCKED` and `FOR_UPDATE`: row locks, empty on SQLite whose
write transactions lock the whole file; `RESULTS_JSON`: rows as a JSON array in text; `COLUMN_TYPES` and `LIST_TABLES`
for the schema, `schema.py`), and how a worker waits for work. Statements are written with `?` placeholders.

Every timestamp the store writes itself (leases above all) comes from the database's clock, so that hosts whose clocks
disagree still agree on when a lease ran out. Reads of a task bring its results in the same query (a JSON aggregate),
so `getResponse` is one indexed read.
"""

from __future__ import annotations

import json
import uuid
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..media.store import image_key, media_key
from .records import (
    UNFINISHED,
    DeliveryRecord,
    DeliveryStatus,
    DuplicateTask,
    LeaseLost,
    QueueFull,
    ResultRecord,
    ResultStatus,
    StoredImage,
    TaskRecord,
    TaskStatus,
    WorkerRecord,
)
from .schema import SCHEMA_VERSION, TABLES, SchemaMismatch, schema_statements

RESULT_COLUMNS = ("idx", "video_uuid", "seed", "status", "progress", "stage", "file_name", "gpu_seconds", "cost",
                  "reported", "expires_at", "preview", "duration")  # fmt: skip
DELIVERY_BATCH = 50
"""The most deliveries one node claims at a time."""


class Statements(Protocol):
    """A connection (or an open transaction): runs one statement, returns its rows as dicts."""

    def run(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]: ...
    def run_many(self, sql: str, rows: list[tuple]) -> None: ...


class SqlTaskStore:
    NOW: str
    SKIP_LOCKED: str
    FOR_UPDATE: str
    RESULTS_JSON: str
    """An aggregate of `{fields}` (name, value, name, value...) over the rows of `results r`, as JSON text."""
    COLUMN_TYPES: dict[str, str]
    """The dialect's words for the schema's `{id}`, `{bigint}` and `{real}` columns."""
    LIST_TABLES: str
    """A query for the names (`name`) of the tables the database holds."""
    integrity_error: type[Exception]

    # -- what a backend provides ------------------------------------------------------------------------------------

    def _run(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Statements]:
        raise NotImplementedError

    def _lock_schema(self, db: Statements) -> None:
        """Keep other processes from creating the schema at the same time (inside its transaction)."""

    def _lock_key(self, db: Statements, key_id: str) -> None:
        """Serialise submissions of one API key until the transaction ends (its pending count, then its insert);
        SQLite's write transactions already are."""

    def _work_queued(self, db: Statements) -> None:
        """A task became claimable in this transaction (Postgres wakes the waiting workers)."""

    def wait_for_work(self, timeout: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- schema -----------------------------------------------------------------------------------------------------

    def _open_schema(self, location: str) -> None:
        """Create the schema in a database that has none of its tables; refuse one at another version than
        SCHEMA_VERSION (`location`, the file or database, names it in the error). Nothing is ever converted."""
        with self._transaction() as db:
            self._lock_schema(db)
            found = {row["name"] for row in db.run(self.LIST_TABLES)}
            if not found & set(TABLES):
                for statement in schema_statements(self.COLUMN_TYPES):
                    db.run(statement)
                db.run("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            rows = db.run("SELECT version FROM schema_version") if "schema_version" in found else []
            if [row["version"] for row in rows] != [SCHEMA_VERSION]:
                raise SchemaMismatch(location, rows[0]["version"] if rows else None)

    def schema_version(self) -> int:
        return self._run("SELECT version FROM schema_version")[0]["version"]

    def now(self) -> float:
        """The database's clock in Unix seconds: a timestamp compared with the store's own (finished_at, created_at,
        expires_at) is taken from it, never from this host's clock, which may disagree with another host's."""
        return self._run(f"SELECT {self.NOW} AS now")[0]["now"]

    # -- reading tasks ------------------------------------------------------------------------------------------------

    def _select_tasks(self, where: str) -> str:
        """A task query that brings each task's results along as a JSON array (one query per read)."""
        results = self.RESULTS_JSON.format(fields=", ".join(f"'{column}', r.{column}" for column in RESULT_COLUMNS))
        return (f"SELECT t.*, (SELECT {results} FROM results r WHERE r.task_id = t.id) AS results_json"
                f" FROM tasks t WHERE {where}")  # fmt: skip

    def _tasks(self, where: str, args: tuple = (), db: Statements | None = None) -> list[TaskRecord]:
        sql = self._select_tasks(where)
        return [_task_record(row) for row in (db.run(sql, args) if db else self._run(sql, args))]

    def get(self, key_id, task_uuid) -> TaskRecord | None:
        found = self._tasks("t.key_id = ? AND t.task_uuid = ?", (key_id, task_uuid))
        return found[0] if found else None

    def get_by_id(self, task_id: int) -> TaskRecord:
        return self._tasks("t.id = ?", (task_id,))[0]

    def list_tasks(self, key_id: str, task_type: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]:
        """This key's most recent tasks of one type, newest first, skipping the `offset` newest."""
        return self._tasks("t.key_id = ? AND t.task_type = ? ORDER BY t.id DESC LIMIT ? OFFSET ?",
                           (key_id, task_type, limit, offset))  # fmt: skip

    def take_preparing(self, owner: str, lease_seconds: float) -> list[TaskRecord]:
        """Claim the tasks waiting for their first-frame image that no API node is fetching (or whose fetcher's lease
        ran out), so that with several API nodes one fetches each."""
        with self._transaction() as db:
            claimed = db.run(
                f"UPDATE tasks SET lease_owner = ?, lease_expires = {self.NOW} + ? WHERE id IN (SELECT id FROM tasks"
                f" WHERE status = 'preparing' AND (lease_owner IS NULL OR lease_expires < {self.NOW}){self.SKIP_LOCKED})"
                " RETURNING id",
                (owner, lease_seconds),
            )
            ids = tuple(row["id"] for row in claimed)
            return self._tasks(f"t.id IN ({', '.join('?' * len(ids))}) ORDER BY t.id", ids, db) if ids else []

    def unreported(self, key_id: str, session_uuid: str, finished_since: float) -> list[TaskRecord]:
        """Tasks of this session with a finished result or an outcome not yet sent to it, oldest first; results
        finished before `finished_since` are no longer kept for it."""
        return self._tasks(
            "t.key_id = ? AND t.session_uuid = ? AND ("
            " (t.status IN ('failed', 'cancelled') AND t.reported = 0 AND t.finished_at >= ?)"
            " OR EXISTS (SELECT 1 FROM results r WHERE r.task_id = t.id AND r.status = 'success' AND r.reported = 0"
            "            AND r.finished_at >= ?)) ORDER BY t.id",
            (key_id, session_uuid, finished_since, finished_since),
        )

    def queue_position(self, task_id: int) -> int:
        """How many tasks wait ahead of this one (0: it is next)."""
        return self._run(
            "SELECT COUNT(*) AS n FROM tasks WHERE status IN ('preparing', 'queued') AND id < ?", (task_id,)
        )[0]["n"]

    def result_by_video(self, video_uuid: str) -> tuple[ResultRecord, float | None] | None:
        rows = self._run("SELECT * FROM results WHERE video_uuid = ?", (video_uuid,))
        return (_result_record(rows[0]), rows[0]["expires_at"]) if rows else None

    def pending_count(self, key_id=None) -> int:
        query = "SELECT COUNT(*) AS n FROM tasks WHERE status IN ('preparing', 'queued', 'running')"
        if key_id is None:
            return self._run(query)[0]["n"]
        return self._run(query + " AND key_id = ?", (key_id,))[0]["n"]

    def status_counts(self) -> dict[TaskStatus, int]:
        """Tasks waiting and running now (an index range: bounded by the pending limits, whatever the table's size),
        and the finished ones ever, by outcome (the `task_totals` counters, kept as tasks finish: no scan, and they
        never go down when expired task rows are deleted)."""
        rows = self._run(
            "SELECT status, COUNT(*) AS n FROM tasks WHERE status IN ('queued', 'running') GROUP BY status"
        )
        counts = {TaskStatus(row["status"]): row["n"] for row in rows}
        counts.update({TaskStatus(row["outcome"]): row["n"] for row in self._run("SELECT outcome, n FROM task_totals")})
        return {status: n for status, n in counts.items() if n}

    def oldest_queued_at(self) -> float | None:
        """When the longest-waiting queued task was submitted (how far behind the workers are)."""
        return self._run("SELECT MIN(created_at) AS t FROM tasks WHERE status = 'queued'")[0]["t"]

    def finished_durations(self) -> tuple[int, float]:
        """(count, total seconds from first claim to finish) over tasks that succeeded or failed after a claim."""
        row = self._run("SELECT COALESCE(SUM(timed), 0) AS n, COALESCE(SUM(seconds), 0) AS seconds FROM task_totals"
                        " WHERE outcome IN ('succeeded', 'failed')")[0]  # fmt: skip
        return int(row["n"]), float(row["seconds"])

    def expired_files(self, now: float) -> list[tuple[str, str]]:
        """(video_uuid, file_name) of finished results whose time to live has passed."""
        rows = self._run("SELECT video_uuid, file_name FROM results WHERE file_name IS NOT NULL AND expires_at < ?",
                         (now,))  # fmt: skip
        return [(row["video_uuid"], row["file_name"]) for row in rows]

    # -- the server's writes --------------------------------------------------------------------------------------

    def submit(self, key_id, task_uuid, task_type, request, job, seeds, status=TaskStatus.QUEUED, session_uuid=None,
               max_pending=None, images=(), audio=None):  # fmt: skip
        """Insert a task (`job`: its job's JSON, which holds no seeds) and one result per seed (the one place a task's
        seeds are kept); refused (`QueueFull`) when the key already has `max_pending` unfinished tasks, counted in the
        same transaction as the insert. `images`: its frame images (`StoredImage`s), `audio`:
        its input audio (kept with the images: a task's inputs), recorded as the task's own."""
        with self._transaction() as db:
            if max_pending is not None:
                self._lock_key(db, key_id)
                pending = db.run("SELECT COUNT(*) AS n FROM tasks WHERE status IN ('preparing', 'queued', 'running')"
                                 " AND key_id = ?", (key_id,))[0]["n"]  # fmt: skip
                if pending >= max_pending:
                    raise QueueFull(max_pending)
            try:
                (row,) = db.run(
                    "INSERT INTO tasks (key_id, task_uuid, task_type, request, job, status, created_at, session_uuid)"
                    f" VALUES (?, ?, ?, ?, ?, ?, {self.NOW}, ?) RETURNING id",
                    (key_id, task_uuid, task_type, json.dumps(request), json.dumps(job), status, session_uuid),
                )
            except self.integrity_error:
                raise DuplicateTask(task_uuid) from None
            db.run_many(
                "INSERT INTO results (task_id, idx, video_uuid, seed) VALUES (?, ?, ?, ?)",
                [(row["id"], i, str(uuid.uuid4()), seed) for i, seed in enumerate(seeds)],
            )
            for stored in (*images, *([audio] if audio else [])):
                self._put_image(db, key_id, stored, row["id"])
            if status == TaskStatus.QUEUED:
                self._work_queued(db)
            return self._tasks("t.id = ?", (row["id"],), db)[0]

    def prepared(self, task_id: int, job: dict, images: list[StoredImage] = (),
                 audio: StoredImage | None = None) -> None:  # fmt: skip
        """The task's inputs are local now (`images`, `audio`: its fetched frame images and input audio): store its
        final job, queue it."""
        inputs = (*images, *([audio] if audio else []))
        with self._transaction() as db:
            if inputs:
                key_id = db.run("SELECT key_id FROM tasks WHERE id = ?", (task_id,))[0]["key_id"]
            for stored in inputs:
                self._put_image(db, key_id, stored, task_id)
            if db.run("UPDATE tasks SET job = ?, status = 'queued', lease_owner = NULL, lease_expires = NULL"
                      " WHERE id = ? AND status = 'preparing' RETURNING id", (json.dumps(job), task_id)):  # fmt: skip
                self._work_queued(db)

    def cancel(self, task_id: int) -> TaskStatus | None:
        """Cancel a task that has not finished; returns the status it had, or None when it had finished already.
        A running task's worker notices at its next step (`holds` turns false) and stops."""
        with self._transaction() as db:
            rows = db.run(f"SELECT status FROM tasks WHERE id = ?{self.FOR_UPDATE}", (task_id,))
            if not rows or rows[0]["status"] not in UNFINISHED:
                return None
            db.run(
                "UPDATE tasks SET status = 'cancelled', error_code = 'cancelled', error_message = ?,"
                f" finished_at = {self.NOW}, lease_owner = NULL WHERE id = ?",
                (f"cancelled while {rows[0]['status']}", task_id),
            )
            db.run("UPDATE deliveries SET state = 'failed', last_error = 'the task was cancelled'"
                   " WHERE task_id = ? AND state = 'pending'", (task_id,))  # fmt: skip
            self._count_finished(db, TaskStatus.CANCELLED, [task_id])
        return TaskStatus(rows[0]["status"])

    def take_result_files(self, task_id: int) -> list[str]:
        """The file names of a task's finished results, no longer served from now on (a cancelled task's: the caller
        deletes the files)."""
        with self._transaction() as db:
            rows = db.run(f"SELECT file_name FROM results WHERE task_id = ? AND file_name IS NOT NULL{self.FOR_UPDATE}",
                          (task_id,))  # fmt: skip
            db.run("UPDATE results SET file_name = NULL WHERE task_id = ?", (task_id,))
        return [row["file_name"] for row in rows]

    def mark_reported(self, task_id: int, indexes: list[int]) -> None:
        """These results (and the task's failure, if it has failed) have been sent to the task's session."""
        with self._transaction() as db:
            db.run_many("UPDATE results SET reported = 1 WHERE task_id = ? AND idx = ?",
                        [(task_id, index) for index in indexes])  # fmt: skip
            db.run("UPDATE tasks SET reported = 1 WHERE id = ? AND status IN ('failed', 'cancelled')", (task_id,))

    def forget_file(self, video_uuid: str) -> None:
        self._run("UPDATE results SET file_name = NULL WHERE video_uuid = ?", (video_uuid,))

    # -- images uploaded with imageUpload ---------------------------------------------------------------------

    def put_image(self, key_id: str, image: StoredImage) -> None:
        with self._transaction() as db:
            self._put_image(db, key_id, image, None)

    def _put_image(self, db: Statements, key_id: str, image: StoredImage, task_id: int | None) -> None:
        db.run("INSERT INTO images (image_uuid, key_id, file_name, content_type, task_id, created_at)"
               f" VALUES (?, ?, ?, ?, ?, {self.NOW})",
               (image.image_uuid, key_id, image.file_name, image.content_type, task_id))  # fmt: skip

    def image_file(self, key_id: str, image_uuid: str) -> str | None:
        rows = self._run("SELECT file_name FROM images WHERE image_uuid = ? AND key_id = ?", (image_uuid, key_id))
        return rows[0]["file_name"] if rows else None

    def image(self, image_uuid: str) -> StoredImage | None:
        """An image by its UUID, any key's (its URL is the capability, as a videoURL is)."""
        rows = self._run("SELECT image_uuid, file_name, content_type FROM images WHERE image_uuid = ?", (image_uuid,))
        return StoredImage(**rows[0]) if rows else None

    # -- expiry ---------------------------------------------------------------------------------------------------

    def expired_images(self, created_before: float) -> list[StoredImage]:
        """Images older than their ttl, but not one an unfinished task still needs."""
        rows = self._run(
            "SELECT image_uuid, file_name, content_type FROM images i WHERE created_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM tasks t WHERE t.id = i.task_id AND t.status IN ('preparing', 'queued', 'running'))",
            (created_before,),
        )
        return [StoredImage(**row) for row in rows]

    def forget_images(self, image_uuids: list[str]) -> None:
        with self._transaction() as db:
            db.run_many("DELETE FROM images WHERE image_uuid = ?", [(image_uuid,) for image_uuid in image_uuids])

    def expired_tasks(self, finished_before: float, limit: int = 500) -> dict[int, list[str]]:
        """Tasks finished before `finished_before` (their rows' ttl has passed), each with the media store names of
        what it still has: result files and its own first-frame images."""
        ids = [row["id"] for row in self._run(
            "SELECT id FROM tasks WHERE finished_at < ? AND status IN ('succeeded', 'failed', 'cancelled')"
            " ORDER BY finished_at LIMIT ?", (finished_before, limit),
        )]  # fmt: skip
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        names: dict[int, list[str]] = {task_id: [] for task_id in ids}
        for row in self._run(f"SELECT task_id, file_name FROM results WHERE task_id IN ({marks})"
                             " AND file_name IS NOT NULL", ids):  # fmt: skip
            names[row["task_id"]].append(media_key(row["file_name"]))
        for row in self._run(f"SELECT task_id, file_name FROM images WHERE task_id IN ({marks})", ids):
            names[row["task_id"]].append(image_key(row["file_name"]))
        return names

    def delete_tasks(self, task_ids: list[int]) -> None:
        """Delete task rows with their results, deliveries and own images (the counters of /metrics stay)."""
        with self._transaction() as db:
            for table, column in (("deliveries", "task_id"), ("results", "task_id"), ("images", "task_id"),
                                  ("tasks", "id")):  # fmt: skip
                db.run_many(f"DELETE FROM {table} WHERE {column} = ?", [(task_id,) for task_id in task_ids])

    # -- the workers' side ----------------------------------------------------------------------------------------

    def claim(self, worker_id, lease_seconds) -> TaskRecord | None:
        """The oldest queued task, now running under this worker's lease; None when nothing waits."""
        with self._transaction() as db:
            rows = db.run(
                f"UPDATE tasks SET status = 'running', lease_owner = ?, lease_expires = {self.NOW} + ?,"
                f" attempts = attempts + 1, started_at = COALESCE(started_at, {self.NOW})"
                " WHERE id = (SELECT id FROM tasks WHERE status = 'queued' ORDER BY id LIMIT 1"
                f"{self.SKIP_LOCKED}) RETURNING id",
                (worker_id, lease_seconds),
            )
            return self._tasks("t.id = ?", (rows[0]["id"],), db)[0] if rows else None

    def renew_lease(self, task_id, worker_id, lease_seconds) -> bool:
        return bool(self._run(
            f"UPDATE tasks SET lease_expires = {self.NOW} + ? WHERE id = ? AND lease_owner = ? AND status = 'running'"
            " RETURNING id",
            (lease_seconds, task_id, worker_id),
        ))  # fmt: skip

    def holds(self, task_id: int, worker_id: str) -> bool:
        """True while this worker still runs this task (false once it is cancelled or taken away)."""
        return bool(self._run("SELECT 1 AS held FROM tasks WHERE id = ? AND lease_owner = ? AND status = 'running'",
                              (task_id, worker_id)))  # fmt: skip

    def set_progress(self, task_id, index, progress, stage=None) -> None:
        self._run("UPDATE results SET progress = ?, stage = ? WHERE task_id = ? AND idx = ? AND status = 'processing'",
                  (progress, stage, task_id, index))  # fmt: skip

    def set_preview(self, task_id, index, preview) -> None:
        self._run("UPDATE results SET preview = ? WHERE task_id = ? AND idx = ? AND status = 'processing'",
                  (json.dumps(preview), task_id, index))  # fmt: skip

    def complete_result(self, task_id, worker_id, index, file_name, gpu_seconds, cost, expires_at, deliveries,
                        duration=None) -> None:  # fmt: skip
        """Record one finished result and queue its deliveries, atomically; only while `worker_id` holds the lease."""
        with self._transaction() as db:
            self._check_lease(db, task_id, worker_id)
            db.run(
                "UPDATE results SET status = 'success', progress = 100, stage = NULL, file_name = ?, gpu_seconds = ?,"
                f" cost = ?, expires_at = ?, duration = ?, finished_at = {self.NOW} WHERE task_id = ? AND idx = ?",
                (file_name, gpu_seconds, cost, expires_at, duration, task_id, index),
            )
            db.run_many(
                "INSERT INTO deliveries (task_id, idx, kind, url) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(task_id, index, kind, url) for kind, url in deliveries],
            )

    def finish(self, task_id, worker_id) -> None:
        with self._transaction() as db:
            self._check_lease(db, task_id, worker_id)
            db.run(f"UPDATE tasks SET status = 'succeeded', finished_at = {self.NOW}, lease_owner = NULL WHERE id = ?",
                   (task_id,))  # fmt: skip
            self._count_finished(db, TaskStatus.SUCCEEDED, [task_id])

    def _check_lease(self, db: Statements, task_id: int, worker_id: str) -> None:
        rows = db.run(f"SELECT lease_owner, status FROM tasks WHERE id = ?{self.FOR_UPDATE}", (task_id,))
        if not rows or rows[0]["status"] != TaskStatus.RUNNING or rows[0]["lease_owner"] != worker_id:
            raise LeaseLost(task_id)

    def fail(self, task_id, code, message) -> None:
        """Fail a task that has not finished (a cancelled task stays cancelled); `code` is an ErrorKind value."""
        with self._transaction() as db:
            failed = db.run(
                f"UPDATE tasks SET status = 'failed', error_code = ?, error_message = ?, finished_at = {self.NOW},"
                " lease_owner = NULL WHERE id = ? AND status IN ('preparing', 'queued', 'running') RETURNING id",
                (code, message, task_id),
            )
            self._count_finished(db, TaskStatus.FAILED, [row["id"] for row in failed])

    def _count_finished(self, db: Statements, outcome: TaskStatus, task_ids: list[int]) -> None:
        """Add tasks that just finished to the `task_totals` counters (/metrics), in their transaction."""
        if not task_ids:
            return
        marks = ", ".join("?" * len(task_ids))
        db.run(
            "UPDATE task_totals SET n = n + ?, timed = timed + (SELECT COUNT(*) FROM tasks"
            f" WHERE id IN ({marks}) AND started_at IS NOT NULL), seconds = seconds + (SELECT"
            f" COALESCE(SUM(finished_at - started_at), 0) FROM tasks WHERE id IN ({marks})) WHERE outcome = ?",
            (len(task_ids), *task_ids, *task_ids, outcome),
        )

    def requeue_expired(self, max_attempts: int) -> list[int]:
        """Running tasks whose lease ran out (on the database's clock) go back to the queue: their worker, or its
        whole host, died. Whichever node calls this first takes them."""
        return self._requeue(f"lease_expires < {self.NOW}", (), max_attempts)

    def requeue_owned(self, max_attempts: int, owner: str) -> list[int]:
        """The running tasks of a worker known to be dead go back to the queue."""
        return self._requeue("lease_owner = ?", (owner,), max_attempts)

    def requeue_node(self, max_attempts: int, node: str) -> list[int]:
        """At a node's start-up: the running tasks of its previous workers (ids `NODE/...`) are orphans; other
        nodes' tasks are left alone."""
        prefix = f"{node}/"
        return self._requeue("substr(lease_owner, 1, CAST(? AS INTEGER)) = ?", (len(prefix), prefix), max_attempts)

    def release_owned(self, owner: str) -> list[int]:
        """The running tasks of a worker stopped on purpose (a shutdown) go back to the queue; that attempt does not
        count towards max_attempts."""
        with self._transaction() as db:
            rows = db.run(
                "UPDATE tasks SET status = 'queued', lease_owner = NULL,"
                " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"
                " WHERE status = 'running' AND lease_owner = ? RETURNING id",
                (owner,),
            )
            if rows:
                self._restart_results(db, rows)
                self._work_queued(db)
        return sorted(row["id"] for row in rows)

    def _restart_results(self, db: Statements, tasks) -> None:
        """Requeued tasks start their unfinished results over: their progress, stage and preview go back to a waiting
        task's (0, none), so that a poll shows the restart instead of where the stopped attempt was."""
        db.run_many("UPDATE results SET progress = 0, stage = NULL, preview = NULL"
                    " WHERE task_id = ? AND status = 'processing'", [(row["id"],) for row in tasks])  # fmt: skip

    def _requeue(self, condition: str, args: tuple, max_attempts: int) -> list[int]:
        # A task that has already used max_attempts fails instead: something in it kills workers. Each UPDATE checks
        # `status = 'running'` again on the row it changes, so a task another node requeued and a worker claimed
        # meanwhile is left alone.
        with self._transaction() as db:
            failed = db.run(
                "UPDATE tasks SET status = 'failed', error_code = 'worker_lost', lease_owner = NULL,"
                " error_message = 'the worker stopped while running this task, ' || attempts || ' times',"
                f" finished_at = {self.NOW} WHERE status = 'running' AND attempts >= ? AND {condition} RETURNING id",
                (max_attempts, *args),
            )
            queued = db.run(
                "UPDATE tasks SET status = 'queued', lease_owner = NULL"
                f" WHERE status = 'running' AND attempts < ? AND {condition} RETURNING id",
                (max_attempts, *args),
            )
            if queued:
                self._restart_results(db, queued)
                self._work_queued(db)
            self._count_finished(db, TaskStatus.FAILED, [row["id"] for row in failed])
        return sorted(row["id"] for row in failed + queued)

    # -- deliveries (the outbox) ----------------------------------------------------------------------------------

    def take_deliveries(self, owner: str, lease_seconds: float) -> list[DeliveryRecord]:
        """Claim deliveries to send: pending ones, and ones whose sender's lease ran out (it died mid-way); each is
        claimed by one node only."""
        with self._transaction() as db:
            rows = db.run(
                f"UPDATE deliveries SET state = 'sending', claimed_by = ?, claim_expires = {self.NOW} + ?"
                " WHERE id IN (SELECT id FROM deliveries"
                f"  WHERE state = 'pending' OR (state = 'sending' AND claim_expires < {self.NOW})"
                f"  ORDER BY id LIMIT {DELIVERY_BATCH}{self.SKIP_LOCKED})"
                " RETURNING id, task_id, idx, kind, url",
                (owner, lease_seconds),
            )
        return sorted((DeliveryRecord(r["id"], r["task_id"], r["idx"], r["kind"], r["url"]) for r in rows),
                      key=lambda delivery: delivery.id)  # fmt: skip

    def finish_delivery(self, delivery_id: int, delivered: bool, attempts: int, status: int | None, error: str | None):
        self._run(
            "UPDATE deliveries SET state = ?, attempts = attempts + ?, last_status = ?, last_error = ?,"
            " claimed_by = NULL WHERE id = ?",
            ("delivered" if delivered else "failed", attempts, status, error, delivery_id),
        )

    def release_claims(self, owner: str) -> None:
        """At a node's start-up: what it was sending when it stopped is sent again at once (receivers dedupe by id),
        and the first-frame images it was fetching are fetched again."""
        with self._transaction() as db:
            db.run("UPDATE deliveries SET state = 'pending', claimed_by = NULL"
                   " WHERE state = 'sending' AND claimed_by = ?", (owner,))  # fmt: skip
            db.run("UPDATE tasks SET lease_owner = NULL, lease_expires = NULL"
                   " WHERE status = 'preparing' AND lease_owner = ?", (owner,))  # fmt: skip

    def unsent_deliveries(self) -> int:
        """How many deliveries are waiting or being sent (a draining server waits for them, for a while)."""
        return self._run("SELECT COUNT(*) AS n FROM deliveries WHERE state IN ('pending', 'sending')")[0]["n"]

    def deliveries_of(self, task_id: int) -> list[DeliveryStatus]:
        rows = self._run("SELECT * FROM deliveries WHERE task_id = ? ORDER BY id", (task_id,))
        return [DeliveryStatus(r["idx"], r["kind"], r["url"], r["state"], r["attempts"], r["last_status"],
                               r["last_error"]) for r in rows]  # fmt: skip

    # -- workers ------------------------------------------------------------------------------------------------

    def worker_state(self, worker_id: str, pid: int, state: str, detail: str = "",
                     memory_profile: str | None = None, memory_budget: int | None = None) -> None:  # fmt: skip
        self._run(
            "INSERT INTO workers (worker_id, pid, state, detail, updated_at, memory_profile, memory_budget)"
            f" VALUES (?, ?, ?, ?, {self.NOW}, ?, ?)"
            " ON CONFLICT (worker_id) DO UPDATE SET pid = excluded.pid, state = excluded.state,"
            " detail = excluded.detail, updated_at = excluded.updated_at,"
            " memory_profile = excluded.memory_profile, memory_budget = excluded.memory_budget",
            (worker_id, pid, state, detail, memory_profile, memory_budget),
        )

    def workers(self) -> list[WorkerRecord]:
        return [WorkerRecord(**row) for row in self._run("SELECT * FROM workers ORDER BY worker_id")]

    def touch_workers(self, worker_ids: list[str]) -> None:
        """The supervisor's heartbeat for its live workers: a row not touched for a while belongs to a dead host."""
        with self._transaction() as db:
            db.run_many(f"UPDATE workers SET updated_at = {self.NOW} WHERE worker_id = ?", [(w,) for w in worker_ids])


# -- rows to records --------------------------------------------------------------------------------------------------


def _task_record(row: dict[str, Any]) -> TaskRecord:
    results = json.loads(row["results_json"]) if row["results_json"] else []
    return TaskRecord(
        id=row["id"],
        key_id=row["key_id"],
        task_uuid=row["task_uuid"],
        task_type=row["task_type"],
        request=json.loads(row["request"]),
        job=json.loads(row["job"]),
        status=TaskStatus(row["status"]),
        attempts=row["attempts"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        results=sorted((_result_record(result) for result in results), key=lambda result: result.index),
        session_uuid=row["session_uuid"],
        reported=bool(row["reported"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _result_record(row: dict[str, Any]) -> ResultRecord:
    return ResultRecord(
        index=row["idx"],
        video_uuid=row["video_uuid"],
        seed=row["seed"],
        status=ResultStatus(row["status"]),
        progress=row["progress"],
        stage=row["stage"],
        file_name=row["file_name"],
        gpu_seconds=row["gpu_seconds"],
        cost=row["cost"],
        reported=bool(row["reported"]),
        expires_at=row["expires_at"],
        preview=json.loads(row["preview"]) if row["preview"] else None,
        duration=row["duration"],
    )
