"""The SQLite task store on its own: claims, leases, requeues, exactly-once results, media expiry."""

import time

import pytest

from server.loops import remove_expired_media
from server.media_store import open_media
from server.settings import Settings
from server.tasks import DuplicateTask, LeaseLost, SQLiteTaskStore


@pytest.fixture
def store(tmp_path):
    return SQLiteTaskStore(tmp_path / "tasks.sqlite3")


def submit(store, task_uuid, key="k", seeds=(1,)):
    return store.submit(key, task_uuid, "videoInference", {"taskUUID": task_uuid}, {"include_cost": False}, list(seeds))


def test_claims_in_order_and_each_task_once(store):
    for name in ("a", "b", "c"):
        submit(store, name)
    claimed = [store.claim("w1", 30).task_uuid, store.claim("w2", 30).task_uuid, store.claim("w1", 30).task_uuid]
    assert claimed == ["a", "b", "c"]
    assert store.claim("w3", 30) is None


def test_task_uuid_is_unique_per_key(store):
    submit(store, "a", key="k1")
    submit(store, "a", key="k2")
    with pytest.raises(DuplicateTask):
        submit(store, "a", key="k1")
    assert store.get("k1", "a").key_id == "k1" and store.get("k3", "a") is None


def test_expired_lease_requeues_and_the_old_worker_cannot_complete(store):
    task = submit(store, "a", seeds=(5, 6))
    claimed = store.claim("w1", lease_seconds=0.01)
    store.complete_result(claimed.id, "w1", 0, "x.mp4", 1.0, 0.1, time.time() + 60, [])
    time.sleep(0.02)
    assert store.requeue_expired(max_attempts=3) == [task.id]
    again = store.claim("w2", 30)
    assert again.attempts == 2 and [r.status for r in again.results] == ["success", "processing"]
    with pytest.raises(LeaseLost):
        store.complete_result(again.id, "w1", 1, "y.mp4", 1.0, 0.1, time.time() + 60, [])
    store.complete_result(again.id, "w2", 1, "y.mp4", 1.0, 0.1, time.time() + 60, [("webhook", "http://h/x")])
    store.finish(again.id, "w2")
    done = store.get("k", "a")
    assert done.status == "succeeded" and [r.file_name for r in done.results] == ["x.mp4", "y.mp4"]
    assert [d["kind"] for d in store.deliveries_of(done.id)] == ["webhook"]


def test_a_task_that_keeps_killing_workers_fails(store):
    task = submit(store, "a")
    for attempt in range(3):
        store.claim(f"w{attempt}", 30)
        store.requeue_owned(max_attempts=3, owner=f"w{attempt}")
    record = store.get("k", "a")
    assert record.status == "failed" and record.error_code == "worker_lost" and record.attempts == 3
    assert store.claim("w9", 30) is None and task.id == record.id


def test_expired_media_is_deleted(tmp_path, store):
    settings = Settings(data_dir=tmp_path)
    settings.media_dir.mkdir()
    task = submit(store, "a", seeds=(1, 2))
    store.claim("w", 30)
    for index, ttl in ((0, -1), (1, 3600)):
        name = f"{task.results[index].video_uuid}.mp4"
        (settings.media_dir / name).write_bytes(b"video")
        store.complete_result(task.id, "w", index, name, 1.0, 0.0, time.time() + ttl, [])
    assert remove_expired_media(open_media(settings), store, time.time()) == [task.results[0].video_uuid]
    assert sorted(p.name for p in settings.media_dir.iterdir()) == [f"{task.results[1].video_uuid}.mp4"]
    assert store.result_by_video(task.results[0].video_uuid)[0].file_name is None


def test_cancel_stops_unfinished_tasks_only(store):
    queued, running, done = (submit(store, name) for name in ("q", "r", "d"))
    for worker in ("w1", "w2", "w3"):
        store.claim(worker, 30)  # q, r and d are running now
    store.finish(done.id, "w3")
    assert store.cancel(running.id) == "running"
    assert not store.holds(running.id, "w2")  # the worker's next step sees this and stops
    with pytest.raises(LeaseLost):
        store.complete_result(running.id, "w2", 0, "x.mp4", 1.0, 0.0, time.time() + 60, [])
    assert store.cancel(done.id) is None and store.cancel(running.id) is None
    store.fail(running.id, "generation_failed", "late failure of a cancelled task")
    record = store.get("k", "r")
    assert (record.status, record.error_code) == ("cancelled", "cancelled")
    assert store.pending_count("k") == 1 and store.holds(queued.id, "w1")


def test_queue_position_counts_the_tasks_ahead(store):
    tasks = [submit(store, name) for name in ("a", "b", "c")]
    assert [store.queue_position(task.id) for task in tasks] == [0, 1, 2]
    store.claim("w", 30)
    assert store.queue_position(tasks[2].id) == 1


def test_a_session_is_sent_what_finished_once_and_within_its_window(store):
    task = store.submit("k", "a", "videoInference", {}, {}, [1, 2], session_uuid="s1")
    store.submit("k", "b", "videoInference", {}, {}, [3], session_uuid="s2")
    store.claim("w", 30)
    store.complete_result(task.id, "w", 0, "x.mp4", 1.0, 0.0, time.time() + 60, [])
    (pending,) = store.unreported("k", "s1", finished_since=time.time() - 60)
    assert [r.reported for r in pending.results] == [False, False]
    assert store.unreported("k", "s1", finished_since=time.time() + 1) == []  # outside the window
    assert store.unreported("other-key", "s1", finished_since=0) == []
    store.mark_reported(task.id, [0])
    assert store.unreported("k", "s1", finished_since=0) == []
    store.complete_result(task.id, "w", 1, "y.mp4", 1.0, 0.0, time.time() + 60, [])
    (pending,) = store.unreported("k", "s1", finished_since=0)
    assert [r.reported for r in pending.results] == [True, False]


def test_a_store_written_before_sessions_and_cancel_is_upgraded(tmp_path):
    import sqlite3

    from server.tasks import ADDED_COLUMNS

    path = tmp_path / "old.sqlite3"
    SQLiteTaskStore(path)
    with sqlite3.connect(path) as db:  # take the store back to the first release's columns
        db.execute("DROP INDEX tasks_by_session")
        for table, column, _ in ADDED_COLUMNS:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        assert "session_uuid" not in {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    store = SQLiteTaskStore(path)
    task = store.submit("k", "a", "videoInference", {}, {}, [1], session_uuid="s")
    assert store.get("k", "a").session_uuid == "s" and store.cancel(task.id) == "queued"
