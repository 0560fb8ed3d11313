"""The SQLite task store on its own: claims, leases, requeues, exactly-once results, media expiry."""

import time

import pytest

from server.loops import remove_expired_media
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
    assert remove_expired_media(settings, store, time.time()) == [task.results[0].video_uuid]
    assert sorted(p.name for p in settings.media_dir.iterdir()) == [f"{task.results[1].video_uuid}.mp4"]
    assert store.result_by_video(task.results[0].video_uuid)[0].file_name is None
