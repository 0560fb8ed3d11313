"""The fleet: two `--role api` servers and two `--role worker` nodes, separate processes sharing one task store (a
real Postgres server) and one media location (a real S3 API server). 30 tasks (36 videos) from three clients spread over both API nodes; one worker node and
one API node are SIGKILLed mid-task (the API node is restarted, the worker node is not). Every task ends with exactly
one result per requested video, readable from either API node, and each file is in the media location exactly once,
with nothing else there.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest

from conftest import probe
from support.postgres_harness import shared_server
from support.s3_server import CREDENTIALS, MotoServer
from server.store.records import WORKER_STALE_SECONDS
from support.server_harness import (
    API_KEY, OTHER_KEY, ServerProcess, download, free_port, prometheus_values, video_task,
)  # fmt: skip

pytestmark = pytest.mark.slow  # four servers, 36 clips: 5 min 7 s on the busy 2-core machine (load average ~10)

TASKS_PER_CLIENT = 10
CLIENT_KEYS = (API_KEY, OTHER_KEY, API_KEY)  # three clients, two of them with the same key


@dataclass
class FleetStorage:
    env: dict[str, str]
    """The settings that point every node at the shared task store and media location."""
    media_names: Callable[[], list[str]]
    """Every object in the media location, as the fleet left it."""


@pytest.fixture
def fleet_storage(tmp_path) -> FleetStorage:
    """The one task store and media location of the fleet, as several hosts would share them: a database on the test
    session's Postgres server and a bucket on an S3 API server (moto) that the test starts; each node keeps only its
    scratch files in a data folder of its own."""
    s3 = MotoServer(tmp_path / "moto.log").start()
    bucket, prefix = "fleet-media", "results"
    s3.client().create_bucket(Bucket=bucket)

    def media_names() -> list[str]:
        listed = s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(item["Key"].removeprefix(f"{prefix}/media/") for item in listed)

    env = {"LTX_DATABASE_URL": shared_server().fresh_database(), "LTX_MEDIA_URL": f"s3://{bucket}/{prefix}",
           "LTX_S3_ENDPOINT_URL": s3.endpoint, **CREDENTIALS}  # fmt: skip
    yield FleetStorage(env, media_names)
    s3.stop()


def task_events(node: ServerProcess, event: str) -> list[dict]:
    events = []
    for line in node.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == event:
                events.append(entry)
    return events


def get_response(node: ServerProcess, task_uuid: str, key: str) -> dict:
    status, body = node.post([{"taskType": "getResponse", "taskUUID": task_uuid}], key=key)
    assert status == 200, body
    return body


def unsigned(items: list[dict]) -> list[dict]:
    """Results without their videoURL's signature, which each getResponse makes afresh (its date and validity)."""
    return [{**item, "videoURL": urlsplit(item["videoURL"])._replace(query="").geturl()} for item in items]


def test_two_api_nodes_and_two_worker_nodes_survive_a_killed_node_of_each(tiny_root, tmp_path, fleet_storage, say):
    say("a fleet of 2 API and 2 worker processes, 30 tiny clips, one node of each kind killed (about 5 min on 2 cores)")
    common = {
        **fleet_storage.env,
        "LTX_LOG_FORMAT": "json",
        "LTX_LEASE_SECONDS": "5",  # a killed worker node's task goes back to the queue 5 s later
        "LTX_MAX_PENDING_PER_KEY": "50",
        "LTX_WORKERS": "1",
    }
    api_ports = [free_port(), free_port()]
    # The videoURLs name one base for the whole fleet (a load balancer's in production; the second API node here).
    common["LTX_PUBLIC_URL"] = f"http://127.0.0.1:{api_ports[1]}"
    apis = [ServerProcess(tmp_path / f"api{i}", tiny_root, port, LTX_ROLE="api", LTX_NODE_ID=f"api{i}", **common)
            for i, port in enumerate(api_ports, 1)]  # fmt: skip
    workers = [ServerProcess(tmp_path / f"worker{i}", tiny_root, LTX_ROLE="worker", LTX_NODE_ID=f"worker{i}", **common)
               for i in (1, 2)]  # fmt: skip
    nodes = apis + workers
    try:
        started_at = time.time()
        with ThreadPoolExecutor(len(nodes)) as starting:
            list(starting.map(lambda node: node.start(), nodes))
        say(f"fleet ready after {time.time() - started_at:.0f} s")
        for api in apis:  # an API node serves no worker of its own but sees the fleet's
            ready = json.loads(urllib.request.urlopen(api.base + "/health/ready", timeout=10).read())
            assert ready["role"] == "api" and sum(w["state"] == "ready" for w in ready["workers"]) == 2, ready
        for worker in workers:  # a worker node reports its own worker, and serves no API
            ready = json.loads(urllib.request.urlopen(worker.base + "/health/ready", timeout=10).read())
            assert ready["role"] == "worker" and [w["state"] for w in ready["workers"]] == ["ready"], ready
            assert worker.post([video_task()])[0] == 404

        submitted: dict[str, tuple[str, ServerProcess, int]] = {}  # taskUUID -> (key, API node, videos asked)
        lock = threading.Lock()

        def client(key: str, first_node: int) -> None:
            nodes_in_turn = itertools.cycle(apis[first_node:] + apis[:first_node])
            for number, node in enumerate(itertools.islice(nodes_in_turn, TASKS_PER_CLIENT)):
                videos = 2 if number % 5 == 0 else 1
                task = video_task(width=64, height=64, duration=1, fps=8, numberResults=videos)
                status, body = node.post([task], key=key)
                assert status == 200, body
                with lock:
                    submitted[task["taskUUID"]] = (key, node, videos)

        with ThreadPoolExecutor(len(CLIENT_KEYS)) as clients:
            list(clients.map(client, CLIENT_KEYS, range(len(CLIENT_KEYS))))
        assert len(submitted) == 30 and {node.port for _, node, _ in submitted.values()} == {a.port for a in apis}

        # Kill the first worker node, supervisor and worker at once as when its host dies, once it has finished a few
        # tasks and while it generates another (started, not finished).
        killed_worker, killed_api = workers[0], apis[0]
        deadline = time.time() + 120
        while time.time() < deadline:
            started = [e["taskUUID"] for e in task_events(killed_worker, "started")]
            finished = {e["taskUUID"] for e in task_events(killed_worker, "finished")}
            interrupted = [uuid for uuid in started if uuid not in finished]
            if len(finished) >= 3 and interrupted:
                break
            time.sleep(0.05)
        assert interrupted, killed_worker.log()[-3000:]
        os.killpg(killed_worker.process.pid, signal.SIGKILL)  # its own session: the supervisor and its worker
        killed_worker.process.wait(10)
        say(f"killed worker node 1 after {time.time() - started_at:.0f} s, mid-task {interrupted[-1]}")

        # Kill the first API node while tasks it accepted are still unfinished; they stay readable from the other.
        unfinished = [
            (uuid, key) for uuid, (key, node, _) in submitted.items()
            if node is killed_api and get_response(apis[1], uuid, key)["data"][0]["status"] == "processing"
        ]  # fmt: skip
        assert unfinished
        killed_api.process.send_signal(signal.SIGKILL)
        killed_api.process.wait(10)
        restarted_api = ServerProcess(killed_api.data_dir, tiny_root, port=killed_api.port, LTX_ROLE="api",
                                      LTX_NODE_ID="api1", **common)  # fmt: skip
        apis[0] = restarted_api.start()
        nodes = apis + workers

        say(f"killed and restarted API node 1 after {time.time() - started_at:.0f} s")
        results = {uuid: apis[1].wait_for_results(uuid, key=key, timeout=240) for uuid, (key, *_) in submitted.items()}

        say(f"30 tasks done after {time.time() - started_at:.0f} s")
        video_files = []
        for task_uuid, (key, _, videos) in submitted.items():
            items = results[task_uuid]  # exactly one result per requested video
            assert len(items) == videos and len({item["videoUUID"] for item in items}) == videos
            for api in apis:  # the same results from either node
                assert unsigned(get_response(api, task_uuid, key)["data"]) == unsigned(items)
            for item in items:
                assert item["status"] == "success" and item["taskUUID"] == task_uuid
                file_name = urlsplit(item["videoURL"]).path.rsplit("/", 1)[1]  # a presigned S3 URL
                for api in apis:  # each file downloadable from either node
                    path, content_type = download(f"{api.base}/media/{file_name}", tmp_path / f"{api.port}-{file_name}")
                    assert content_type == "video/mp4"
                clip = probe(path)
                assert (clip.width, clip.height, clip.frames) == (64, 64, 8)  # 1 s at 8 fps
                video_files.append(file_name)
        assert len(video_files) == 36
        assert fleet_storage.media_names() == sorted(video_files)  # each once; no partial or orphan files

        # The interrupted task ran again on the surviving worker node, as its second attempt.
        retried = {e["taskUUID"]: e["attempt"] for e in task_events(workers[1], "started")}
        assert retried.get(interrupted[-1]) == 2, interrupted

        # The metrics an autoscaler reads: an empty queue, and once its row goes stale, one live worker, not two.
        deadline = time.time() + WORKER_STALE_SECONDS + 15
        while time.time() < deadline:
            metrics = prometheus_values(urllib.request.urlopen(apis[0].base + "/metrics", timeout=10).read().decode())
            if metrics['ltx_workers{state="ready"}'] == 1:
                break
            time.sleep(1)
        assert metrics['ltx_workers{state="ready"}'] == 1
        assert metrics["ltx_tasks_queued"] == 0 and metrics["ltx_oldest_queued_seconds"] == 0
        assert metrics['ltx_tasks_finished_total{outcome="succeeded"}'] == 30
    finally:
        for node in nodes:
            node.stop()
