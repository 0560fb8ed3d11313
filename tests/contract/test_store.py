"""The task store contract: every case runs against both backends, SQLite (a file) and Postgres (a real server started
for the session, tests/support/postgres_harness.py): claims, leases on the database's clock, requeues, exactly-once results,
deliveries, sessions, media expiry, the schema's version, wake-ups."""

import asyncio
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.postgres_harness import shared_server

from ltx_runtime.request import MAX_SEED

from server.ops.loops import cleanup_loop, remove_expired, remove_expired_media
from server.media.store import image_key, media_key, open_media
from server.settings import Settings
from server.store.records import DeliveryStatus, DuplicateTask, LeaseLost, QueueFull, StoredImage, WorkerRecord
from server.store import open_store
from server.store.schema import SCHEMA_VERSION, SchemaMismatch
from server.tasks.jobs import Job
from server.tasks.service import TaskService
from server.workers.resilience import LoopHealth

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_url(backend, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'tasks.sqlite3'}" if backend == "sqlite" else shared_server().fresh_database()


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


def submit(store, task_uuid, key="k", seeds=(1,)):
    return store.submit(key, task_uuid, "videoInference", {"taskUUID": task_uuid}, {"include_cost": False}, list(seeds))


def test_claims_in_order_and_each_task_once(store):
    for name in ("a", "b", "c"):
        submit(store, name)
    claimed = [store.claim("w1", 30).task_uuid, store.claim("w2", 30).task_uuid, store.claim("w1", 30).task_uuid]
    assert claimed == ["a", "b", "c"]
    assert store.claim("w3", 30) is None


def test_a_jobs_seeds_are_kept_once_in_its_results_and_come_back_identical(store):
    """The results rows are the one place of a task's seeds (its job's JSON has none); a job read back has them in
    order, the largest seed exact, also after its JSON is rewritten once its inputs are fetched."""
    job = Job(model="ltx-runtime:tiny@1", prompt="a cat", width=64, height=64, duration=1.0, fps=8, audio=False,
              seeds=[MAX_SEED, 0, 7])  # fmt: skip
    task = store.submit("k", "seeded", "videoInference", {}, job.to_dict(), job.seeds, status="preparing")
    for record in (task, store.get("k", "seeded")):
        assert "seeds" not in record.job and [result.seed for result in record.results] == job.seeds
        assert Job.from_record(record) == job
    store.prepared(task.id, {**task.job, "width": 128})
    assert Job.from_record(store.get_by_id(task.id)).seeds == job.seeds


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
    assert store.deliveries_of(done.id) == [DeliveryStatus(1, "webhook", "http://h/x", "pending", 0, None, None)]


def test_a_task_that_keeps_killing_workers_fails(store):
    task = submit(store, "a")
    for attempt in range(3):
        store.claim(f"w{attempt}", 30)
        store.requeue_owned(max_attempts=3, owner=f"w{attempt}")
    record = store.get("k", "a")
    assert record.status == "failed" and record.error_code == "worker_lost" and record.attempts == 3
    assert store.claim("w9", 30) is None and task.id == record.id


def test_expired_media_is_deleted(tmp_path, store):
    media = open_media(Settings(data_dir=tmp_path))
    task = submit(store, "a", seeds=(1, 2))
    store.claim("w", 30)
    for index, ttl in ((0, -1), (1, 3600)):
        name = f"{task.results[index].video_uuid}.mp4"
        media.put_bytes(media_key(name), b"video", "video/mp4")
        store.complete_result(task.id, "w", index, name, 1.0, 0.0, time.time() + ttl, [])
    assert remove_expired_media(media, store, time.time()) == [task.results[0].video_uuid]
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [f"{task.results[1].video_uuid}.mp4"]
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


HOST_CLOCK = time.time


def host_clock_off_by(monkeypatch, seconds: float) -> None:
    """This host's clock (time.time) runs `seconds` ahead of the database's, as another host's may."""
    monkeypatch.setattr(time, "time", lambda: HOST_CLOCK() + seconds)


def test_the_store_clock_is_the_one_its_timestamps_are_on(store):
    before = store.now()
    task = submit(store, "a")
    assert before <= task.created_at <= store.now()


def test_the_session_replay_window_is_measured_on_the_database_clock(tmp_path, store, monkeypatch):
    settings = Settings(data_dir=tmp_path, session_replay_seconds=600)
    tasks = TaskService(settings, store, open_media(settings))
    failed = store.submit("k", "a", "videoInference", {}, {}, [1], session_uuid="s1")
    store.fail(failed.id, "invalid_image", "bad")
    host_clock_off_by(monkeypatch, 2 * 600)  # this host's clock is 20 minutes ahead
    assert [task.task_uuid for task in tasks.unreported("k", "s1")] == ["a"]  # finished just now: replayed
    with store._transaction() as db:  # finished 11 minutes ago on the database's clock: past the window
        db.run("UPDATE tasks SET finished_at = finished_at - 660")
    host_clock_off_by(monkeypatch, -2 * 600)  # and 20 minutes behind
    assert tasks.unreported("k", "s1") == []


def test_the_expiry_loop_ends_ttls_on_the_database_clock(tmp_path, store, monkeypatch):
    settings = Settings(data_dir=tmp_path, image_ttl_seconds=3600, task_ttl_seconds=3600)
    media = open_media(settings)
    task = submit(store, "a", seeds=(1, 2))
    store.claim("w", 30)
    for index, expires_at in ((0, store.now() - 1), (1, store.now() + 3600)):
        name = f"{task.results[index].video_uuid}.mp4"
        media.put_bytes(media_key(name), b"video", "video/mp4")
        store.complete_result(task.id, "w", index, name, 1.0, 0.0, expires_at, [])
    store.put_image("k", StoredImage("u", "u", "image/png"))
    media.put_bytes(image_key("u"), b"png", "image/png")
    host_clock_off_by(monkeypatch, 2 * 86400)  # two days ahead: every ttl has passed on this host

    async def one_round():
        loop = asyncio.create_task(cleanup_loop(settings, media, store, LoopHealth()))
        while store.result_by_video(task.results[0].video_uuid)[0].file_name is not None:
            await asyncio.sleep(0.05)
        loop.cancel()

    asyncio.run(asyncio.wait_for(one_round(), 30))
    assert store.result_by_video(task.results[1].video_uuid)[0].file_name is not None  # an hour left
    assert store.image("u") is not None and store.get("k", "a") is not None


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


def test_get_reads_a_task_and_its_results_in_one_query(store, monkeypatch):
    task = submit(store, "a", seeds=(1, 2, 3))
    queries = []
    real_run = store._run
    monkeypatch.setattr(store, "_run", lambda sql, args=(): queries.append(sql) or real_run(sql, args))
    record = store.get("k", "a")
    assert len(queries) == 1 and [r.video_uuid for r in record.results] == [r.video_uuid for r in task.results]
    assert [(r.index, r.seed, r.status) for r in record.results] == [(0, 1, "processing"), (1, 2, "processing"),
                                                                     (2, 3, "processing")]  # fmt: skip


CLAIMER = """
import sys, time
from pathlib import Path
from server.store import open_store
store = open_store(sys.argv[1])
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
while (task := store.claim(sys.argv[2], 30)) is not None:
    print(task.id, flush=True)
"""


def test_concurrent_claimers_never_share_a_task(store, store_url, tmp_path):
    """Four processes with two threads each claim from one store at once: every task goes to exactly one of them."""
    tasks = [submit(store, f"t{i}").id for i in range(60)]
    go = tmp_path / "go"
    processes = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, store_url, f"p{i}", str(go)], stdout=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    claimed_here: list[int] = []

    def claim_in_thread(worker_id: str) -> None:
        thread_store = open_store(store_url)
        while not go.exists():
            time.sleep(0.01)
        while (task := thread_store.claim(worker_id, 30)) is not None:
            claimed_here.append(task.id)
        thread_store.close()

    threads = [threading.Thread(target=claim_in_thread, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # the processes have imported the store and wait for the signal
    go.touch()
    for thread in threads:
        thread.join(60)
    claimed = claimed_here + [int(line) for p in processes for line in p.communicate(timeout=60)[0].split()]
    assert all(p.returncode == 0 for p in processes)
    assert sorted(claimed) == tasks  # each task once: none twice, none lost
    assert store.status_counts() == {"running": 60}


def test_leases_run_on_the_database_clock(store, monkeypatch):
    """A host whose clock is an hour ahead neither expires other workers' leases early nor renews its own wrongly."""
    first, second = submit(store, "a"), submit(store, "b")
    store.claim("node1/w1", lease_seconds=30)
    store.claim("node1/w2", lease_seconds=0.2)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    assert store.requeue_expired(max_attempts=3) == []  # by this host's clock both leases ended long ago
    time.sleep(0.3)
    assert store.requeue_expired(max_attempts=3) == [second.id]  # the database's clock: only the short one ended
    assert store.renew_lease(first.id, "node1/w1", lease_seconds=0.2) and not store.renew_lease(second.id, "node1/w2", 30)
    time.sleep(0.3)
    assert store.requeue_expired(max_attempts=3) == [first.id]


def test_a_requeued_task_shows_its_restart_not_where_the_stopped_attempt_was(store):
    task = submit(store, "a", seeds=(5, 6))
    stops = (lambda worker: store.release_owned(worker), lambda worker: store.requeue_owned(3, worker),
             lambda worker: store.requeue_node(3, worker.split("/")[0]))  # a shutdown, a dead worker, a restart
    for attempt, stop in enumerate(stops):
        worker = f"node/worker-{attempt}"
        claimed = store.claim(worker, 30)
        if claimed.results[0].status == "processing":
            store.complete_result(claimed.id, worker, 0, "x.mp4", 1.0, 0.1, time.time() + 60, [])
        store.set_progress(task.id, 1, 74, "decoding")
        store.set_preview(task.id, 1, {"image": "data:image/png;base64,", "step": 4, "steps": 8})
        assert stop(worker) == [task.id]
        first, second = store.get("k", "a").results
        assert (first.status, first.progress) == ("success", 100)  # a finished result keeps its file
        assert (second.status, second.progress, second.stage, second.preview) == ("processing", 0, None, None)


def test_start_up_requeues_only_this_nodes_tasks(store):
    tasks = {name: submit(store, name) for name in ("mine", "other", "prefix", "mine-too")}
    for worker in ("gpu-1/worker0-aa", "gpu-2/worker0-bb", "gpu-10/worker0-cc", "gpu-1/worker1-dd"):
        store.claim(worker, 30)
    assert store.requeue_node(max_attempts=3, node="gpu-1") == [tasks["mine"].id, tasks["mine-too"].id]
    assert [store.get("k", name).status for name in tasks] == ["queued", "running", "running", "queued"]


def test_a_queued_task_wakes_an_idle_worker(store, store_url, backend, say):
    """The worker's idle loop (claim, else wait_for_work with a 10 s safety poll) takes a new task well within 1 s:
    SQLite by its short poll, Postgres by the NOTIFY it waits on, without polling."""
    worker = open_store(store_url)
    waits, claimed = [], []

    def idle_loop() -> None:
        while (task := worker.claim("node/worker0", 30)) is None:
            worker.wait_for_work(10)
            waits.append(time.perf_counter())
        claimed.append((task.task_uuid, time.perf_counter()))

    thread = threading.Thread(target=idle_loop)
    thread.start()
    time.sleep(1)
    submitted = time.perf_counter()
    submit(store, "a")
    thread.join(15)
    worker.close()
    latency = claimed[0][1] - submitted
    say(f"{backend}: claimed {latency * 1000:.0f} ms after the submit, {len(waits)} waits")
    assert claimed[0][0] == "a" and latency < 1.0
    if backend == "postgres":
        assert len(waits) <= 2  # the first wait only starts listening; the second ends with the notification


def test_each_delivery_is_claimed_by_one_node_and_a_dead_senders_come_back(store):
    task = submit(store, "a", seeds=range(10))
    store.claim("w", 30)
    for index in range(10):
        hooks = [("webhook", f"http://h/{index}"), ("upload", f"http://h/up/{index}")]
        store.complete_result(task.id, "w", index, f"{index}.mp4", 1.0, 0.0, time.time() + 60, hooks)
    taken: dict[str, list[int]] = {}

    def take(node: str) -> None:
        node_store = open_store_like(store)
        taken[node] = [delivery.id for delivery in node_store.take_deliveries(node, lease_seconds=60)]
        taken[node] += [delivery.id for delivery in node_store.take_deliveries(node, lease_seconds=60)]
        node_store.close()

    threads = [threading.Thread(target=take, args=(f"node{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = sorted(i for ids in taken.values() for i in ids)
    assert len(every) == 20 and len(set(every)) == 20
    assert {d.state for d in store.deliveries_of(task.id)} == {"sending"}

    dead, alive = [node for node, ids in taken.items() if ids][:1] + ["node9"]
    store.release_claims("some-other-node")  # another node's start-up leaves them alone
    assert store.take_deliveries(alive, lease_seconds=60) == []
    store.release_claims(dead)  # the dead node restarts: it sends its own again at once
    assert sorted(d.id for d in store.take_deliveries(dead, lease_seconds=0.1)) == sorted(taken[dead])
    time.sleep(0.3)  # it died again; its lease runs out and another node takes them
    assert sorted(d.id for d in store.take_deliveries(alive, lease_seconds=60)) == sorted(taken[dead])
    store.finish_delivery(taken[dead][0], True, 1, 200, None)
    assert store.deliveries_of(task.id)[taken[dead][0] - 1].state == "delivered"


def open_store_like(store):
    """Another connection to the same store, as another node would have."""
    return open_store(f"sqlite:///{store.path}" if hasattr(store, "path") else store.url)


def test_one_api_node_fetches_each_first_frame_image_until_its_claim_runs_out(store):
    node_a, node_b = store, open_store_like(store)
    node_a.submit("k", "with-image-url", "videoInference", {}, {}, [1], status="preparing")
    submit(node_a, "ready-to-run")
    (claimed,) = node_a.take_preparing("api-a", lease_seconds=0.5)
    assert claimed.task_uuid == "with-image-url"
    assert node_b.take_preparing("api-b", lease_seconds=0.5) == []  # node a is fetching it
    time.sleep(0.6)  # node a died while fetching: its claim runs out and node b takes the task over
    assert [task.task_uuid for task in node_b.take_preparing("api-b", lease_seconds=60)] == ["with-image-url"]
    node_b.release_claims("api-b")  # node b restarts: what it was fetching is free again at once
    assert [task.task_uuid for task in node_a.take_preparing("api-a", lease_seconds=60)] == ["with-image-url"]
    node_b.prepared(claimed.id, claimed.job)
    assert node_a.get_by_id(claimed.id).status == "queued"
    time.sleep(0.01)
    assert node_a.take_preparing("api-a", lease_seconds=60) == [] and node_b.claim("worker", 30).id == claimed.id


def test_workers_are_typed_records(store):
    store.worker_state("gpu-1/worker0-aa", 42, "ready", "cuda:0 weights", "resident", 131 * 1024**3)
    store.worker_state("gpu-1/worker1-bb", 43, "starting")
    ready, starting = store.workers()
    assert isinstance(ready, WorkerRecord) and ready.updated_at > 0
    assert (ready.worker_id, ready.pid, ready.state, ready.memory_profile, ready.memory_budget) == (
        "gpu-1/worker0-aa", 42, "ready", "resident", 131 * 1024**3)  # fmt: skip
    assert (starting.state, starting.memory_budget) == ("starting", None)


def location(store_url: str) -> str:
    """What the store's errors call it: the SQLite file's absolute path, or the Postgres URL."""
    return str(Path(store_url.removeprefix("sqlite:///")).resolve()) if store_url.startswith("sqlite") else store_url


def test_the_schema_is_versioned_and_another_version_is_refused_untouched(store, store_url):
    assert store.schema_version() == SCHEMA_VERSION == 1
    submit(store, "a")
    again = open_store(store_url)  # opening again changes nothing and keeps the tasks
    assert again.schema_version() == SCHEMA_VERSION and again.get("k", "a") is not None
    again.close()
    for version in (SCHEMA_VERSION + 1, 4):  # a later build's, and the last one before the schema was squashed
        store._run("UPDATE schema_version SET version = ?", (version,))
        with pytest.raises(SchemaMismatch) as refused:
            open_store(store_url)
        message = str(refused.value)
        assert f"the task store {location(store_url)} has schema version {version}, and this ltx-runtime's is 1" in message
        assert "Delete it" in message and "new, empty one" in message
        assert store.schema_version() == version and store.get("k", "a") is not None  # never altered
    if store_url.startswith("postgres"):  # a password in the URL is not repeated in the error
        with pytest.raises(SchemaMismatch) as refused:
            open_store(store_url.replace("postgres@", "postgres:hunter2@"))
        assert "postgres:***@" in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_store_from_before_schema_versions_is_refused_untouched(store_url, backend):
    """Tables of ours without a `schema_version` (an early build's): refused, and nothing is added to them; a
    database that only holds other tables (a shared Postgres) gets the schema."""
    early = "CREATE TABLE tasks (id INTEGER PRIMARY KEY, key_id TEXT NOT NULL)"
    if backend == "sqlite":
        path = Path(store_url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as db:
            db.execute(early)

        def tables():
            with sqlite3.connect(path) as db:
                return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    else:
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as db:
            db.execute(early)

        def tables():
            with psycopg.connect(store_url) as db:
                return {row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    with pytest.raises(SchemaMismatch, match=f"the task store {re.escape(location(store_url))} has schema version none"):
        open_store(store_url)
    assert tables() == {"tasks"}
    if backend == "postgres":
        shared = shared_server().fresh_database()
        with psycopg.connect(shared, autocommit=True) as db:
            db.execute("CREATE TABLE another_apps_table (id INTEGER)")
        opened = open_store(shared)
        assert opened.schema_version() == SCHEMA_VERSION and submit(opened, "a").status == "queued"
        opened.close()


def test_settings_pick_the_store_and_name_the_node(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    assert settings.store_url == f"sqlite:///{tmp_path}/tasks.sqlite3" and settings.node == Settings(data_dir=tmp_path).node
    assert settings.node != Settings(data_dir=tmp_path / "other").node  # another data folder on this host: another node
    assert open_store(settings.store_url).schema_version() == SCHEMA_VERSION and settings.database.is_file()
    monkeypatch.setenv("LTX_DATABASE_URL", "postgresql://ltx@db.internal/ltx")
    monkeypatch.setenv("LTX_NODE_ID", "gpu-host-7")
    assert (Settings().store_url, Settings().node) == ("postgresql://ltx@db.internal/ltx", "gpu-host-7")
    with pytest.raises(ValueError, match="node_id"):
        Settings(node_id="gpu/1")  # "/" separates the node from the worker in worker ids
    with pytest.raises(ValueError, match="use sqlite:///PATH or postgresql://"):
        open_store("mysql://db/ltx")


# -- issue 27: ttls for images and task rows, the per-key limit in the insert, counters for /metrics -----------------


def test_images_and_finished_task_rows_expire_with_what_they_hold(tmp_path, store):
    settings = Settings(data_dir=tmp_path, image_ttl_seconds=60, task_ttl_seconds=60)
    media = open_media(settings)
    uploaded, fresh = StoredImage("u-old", "u-old", "image/png"), StoredImage("u-new", "u-new", "image/png")
    first_frames = [StoredImage(f"f-{name}", f"f-{name}", "image/png") for name in ("done", "waiting")]
    for image in (uploaded, fresh, *first_frames):
        media.put_bytes(image_key(image.file_name), b"png", image.content_type)
    store.put_image("k", uploaded)
    store.put_image("k", fresh)
    done = store.submit("k", "done", "videoInference", {}, {}, [1], images=[first_frames[0]])
    waiting = store.submit("k", "waiting", "videoInference", {}, {}, [1], images=[first_frames[1]])
    store.claim("w", 30)  # "done"
    name = f"{done.results[0].video_uuid}.mp4"
    media.put_bytes(media_key(name), b"video", "video/mp4")
    store.complete_result(done.id, "w", 0, name, 1.0, 0.0, time.time() + 86400, [("webhook", "http://h/x")])
    store.finish(done.id, "w")
    with store._transaction() as db:  # two hours ago: past both ttls (except the fresh upload's)
        db.run("UPDATE images SET created_at = created_at - 7200 WHERE image_uuid != 'u-new'")
        db.run("UPDATE tasks SET finished_at = finished_at - 7200, created_at = created_at - 7200")
    before = store.status_counts()
    remove_expired(settings, media, store, time.time())
    assert store.get("k", "done") is None and store.deliveries_of(done.id) == []
    assert store.get("k", "waiting").status == "queued"  # unfinished: kept, and so is its first frame
    assert store.image("u-old") is None and store.image("f-done") is None
    assert store.image("u-new") is not None and store.image("f-waiting") is not None
    left = sorted(p.name for folder in ("media", "images") for p in (tmp_path / folder).iterdir())
    assert left == ["f-waiting", "u-new"]
    assert store.status_counts() == before == {"queued": 1, "succeeded": 1}  # counters never go down
    assert store.finished_durations()[0] == 1 and waiting.id


def test_a_tasks_input_audio_is_kept_and_expires_with_it(tmp_path, store):
    """Audio-to-video: the input audio is recorded as the task's own, beside its first frame, at submit or once
    fetched (`prepared`); it lives while the task is unfinished and goes with the task's rows."""
    settings = Settings(data_dir=tmp_path, image_ttl_seconds=60, task_ttl_seconds=60)
    media = open_media(settings)
    frame, sent, fetched = (StoredImage(name, name, kind) for name, kind in (
        ("frame", "image/png"), ("audio-sent", "application/octet-stream"), ("audio-fetched", "application/octet-stream")))
    for stored in (frame, sent, fetched):
        media.put_bytes(image_key(stored.file_name), b"data", stored.content_type)
    done = store.submit("k", "done", "videoInference", {}, {"audio_input_file": "audio-sent"}, [1], images=[frame], audio=sent)
    waiting = store.submit("k", "waiting", "videoInference", {}, {}, [1], status="preparing")
    store.prepared(waiting.id, {"audio_input_file": "audio-fetched"}, audio=fetched)
    assert store.get_by_id(waiting.id).job == {"audio_input_file": "audio-fetched"}
    assert store.image("audio-sent") and store.image("audio-fetched") and store.image("frame")
    store.claim("w", 30)  # "done"
    store.finish(done.id, "w")
    with store._transaction() as db:  # two hours ago: past both ttls
        db.run("UPDATE images SET created_at = created_at - 7200")
        db.run("UPDATE tasks SET finished_at = finished_at - 7200, created_at = created_at - 7200")
    remove_expired(settings, media, store, time.time())
    assert store.image("audio-sent") is None and store.image("frame") is None  # with the finished task
    assert store.image("audio-fetched") is not None  # its task is still queued
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["audio-fetched"]


def test_the_pending_limit_is_counted_in_the_insert_under_concurrent_clients(store, store_url):
    accepted, refused = [], []

    def client(number: int) -> None:
        own = open_store(store_url)  # a connection of its own, as another API node's
        try:
            for i in range(6):
                try:
                    own.submit("k", f"c{number}-{i}", "videoInference", {}, {}, [1], max_pending=20)
                    accepted.append(1)
                except QueueFull:
                    refused.append(1)
        finally:
            own.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(accepted), len(refused), store.pending_count("k")) == (20, 28, 20)
    submit(store, "other-key", key="k2")  # the limit is per key


def test_metrics_counters_come_from_totals_not_a_scan_of_the_task_table(store, backend):
    for name in ("a", "b", "c"):
        submit(store, name)
    store.claim("w", 30)
    store.finish(store.get("k", "a").id, "w")
    store.fail(store.get("k", "b").id, "invalid_image", "bad")
    store.cancel(store.get("k", "c").id)
    store.fail(store.get("k", "c").id, "invalid_image", "too late")  # a cancelled task stays cancelled: counted once
    assert store.status_counts() == {"succeeded": 1, "failed": 1, "cancelled": 1}
    assert store.finished_durations()[0] == 1
    if backend == "sqlite":  # each statement a scrape runs reads an index range or the small tables, never all tasks
        statements = []
        original = store._run
        store._run = lambda sql, args=(): statements.append((sql, args)) or original(sql, args)
        store.status_counts(), store.finished_durations(), store.oldest_queued_at()
        plans = [row["detail"] for sql, args in statements for row in original(f"EXPLAIN QUERY PLAN {sql}", args)]
        assert not [plan for plan in plans if plan.startswith("SCAN") and "tasks" in plan], plans
