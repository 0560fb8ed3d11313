"""The task store's schema, written once for both backends: the tables, their columns and indexes, with the few words
the dialects spell differently as `{placeholders}` that each backend fills in (`COLUMN_TYPES`: SQLite's and
Postgres's words for an auto-numbered id, a 64-bit integer and a float; JSON is text on both).

There are no migrations (`SqlTaskStore._open_schema`): a database with none of these tables gets them, one at
SCHEMA_VERSION is used as it is, and one at any other version (written by another build, or before versions) is
refused, never altered. A change to the schema raises SCHEMA_VERSION.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE tasks (
    id {id},                                       -- claim order
    key_id TEXT NOT NULL,
    task_uuid TEXT NOT NULL,
    task_type TEXT NOT NULL,
    request TEXT NOT NULL,                         -- the task as the client sent it (getTaskDetails), JSON
    job TEXT NOT NULL,                             -- the validated job the worker runs, JSON
    status TEXT NOT NULL DEFAULT 'queued',         -- preparing | queued | running | succeeded | failed | cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,                              -- the worker id, NODE/workerN-...
    lease_expires {real},                          -- Unix seconds, on the database's clock
    error_code TEXT,                               -- an ErrorKind value
    error_message TEXT,
    created_at {real} NOT NULL,
    started_at {real},
    finished_at {real},
    session_uuid TEXT,                             -- the WebSocket session that submitted it, for replay
    reported INTEGER NOT NULL DEFAULT 0,           -- 1: its failure or cancellation was sent to that session
    UNIQUE (key_id, task_uuid)
);
CREATE INDEX tasks_by_status ON tasks (status, id);
CREATE INDEX tasks_by_session ON tasks (session_uuid) WHERE session_uuid IS NOT NULL;
CREATE INDEX tasks_by_key ON tasks (key_id, task_type, id);                  -- listTasks
CREATE INDEX tasks_by_finish ON tasks (finished_at) WHERE finished_at IS NOT NULL;  -- expiry
CREATE TABLE results (
    task_id {bigint} NOT NULL REFERENCES tasks (id),
    idx INTEGER NOT NULL,
    video_uuid TEXT NOT NULL UNIQUE,
    seed {bigint} NOT NULL,
    status TEXT NOT NULL DEFAULT 'processing',     -- processing | success
    progress INTEGER NOT NULL DEFAULT 0,
    stage TEXT,                                    -- the stage of ltx_runtime.progress.STAGES running now
    file_name TEXT,
    gpu_seconds {real},
    cost {real},
    expires_at {real},
    finished_at {real},
    reported INTEGER NOT NULL DEFAULT 0,           -- 1: this success was sent to the task's session
    preview TEXT,                                  -- the live preview while denoising: JSON {{image, step, steps}}
    duration {real},                               -- what the duration head picked (null: the request named one)
    PRIMARY KEY (task_id, idx)
);
CREATE INDEX results_by_expiry ON results (expires_at) WHERE file_name IS NOT NULL;
CREATE TABLE deliveries (
    id {id},
    task_id {bigint} NOT NULL REFERENCES tasks (id),
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,                            -- webhook | upload
    url TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',         -- pending | sending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    claimed_by TEXT,                               -- the node sending it (state 'sending'), under a lease
    claim_expires {real},
    UNIQUE (task_id, idx, kind)
);
CREATE INDEX deliveries_by_state ON deliveries (state, id);
CREATE TABLE images (
    image_uuid TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    created_at {real} NOT NULL,
    content_type TEXT,
    task_id {bigint}                               -- the task it is an input of (expiry spares unfinished ones')
);
CREATE INDEX images_by_age ON images (created_at);
CREATE INDEX images_by_task ON images (task_id) WHERE task_id IS NOT NULL;
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    pid INTEGER,
    state TEXT NOT NULL,                           -- starting | ready | failed | stopped
    detail TEXT,
    updated_at {real} NOT NULL,
    memory_profile TEXT,                           -- where the worker's engine keeps its weights
    memory_budget {bigint}                         -- GPU bytes a request may plan to use (NULL: no limit)
);
CREATE TABLE task_totals (                         -- finished tasks by outcome, counted as they finish (/metrics)
    outcome TEXT PRIMARY KEY,
    n {bigint} NOT NULL,
    timed {bigint} NOT NULL,                       -- those that had started: `seconds` is their time from start
    seconds {real} NOT NULL
);
INSERT INTO task_totals (outcome, n, timed, seconds) VALUES ('succeeded', 0, 0, 0), ('failed', 0, 0, 0),
    ('cancelled', 0, 0, 0);
CREATE TABLE schema_version (version INTEGER NOT NULL)
"""
TABLES = ("tasks", "results", "deliveries", "images", "workers", "task_totals", "schema_version")


class SchemaMismatch(RuntimeError):
    """The database was written by a build of ltx-runtime with another schema (or before schemas had versions)."""

    def __init__(self, location: str, found: int | None):
        super().__init__(
            f"the task store {location} has schema version {'none' if found is None else found}, and this"
            f" ltx-runtime's is {SCHEMA_VERSION}: it was written by another build, and is never converted. Delete it"
            " (a SQLite store: DATA_DIR/tasks.sqlite3 and its -wal and -shm files) or start on a new, empty one"
            " (another LTX_DATA_DIR, or an LTX_DATABASE_URL naming an empty database)"
        )


def schema_statements(column_types: dict[str, str]) -> list[str]:
    """The schema's statements in one dialect, comments left out."""
    script = re.sub(r"--[^\n]*", "", SCHEMA.format(**column_types))
    return [statement.strip() for statement in script.split(";") if statement.strip()]
