"""Two servers (nodes) on one Postgres store: a restart requeues only the restarted node's own tasks."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from support.postgres_harness import shared_server
from support.server_harness import ServerProcess, video_task

pytestmark = pytest.mark.slow  # four server starts and an 8 s clip run twice
LONG_LEASE = "600"  # no lease runs out during the test: only a node's start-up requeues


def details(server: ServerProcess, task_uuid: str) -> dict:
    return server.post([{"taskType": "getTaskDetails", "taskUUID": task_uuid}])[1]["data"][0]


def running_node(nodes: dict[str, ServerProcess], task_uuid: str, timeout: float = 120) -> str:
    """The name of the node whose worker has started the task and made progress."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name, node in nodes.items():
            if re.search(rf"task started taskUUID={task_uuid}", node.log()):
                item = node.post([{"taskType": "getResponse", "taskUUID": task_uuid}])[1]["data"][0]
                if item["status"] == "processing" and item["progress"] > 0:
                    return name
        time.sleep(0.1)
    raise TimeoutError(f"task {task_uuid} not running after {timeout} s")


def test_a_restarted_node_requeues_its_own_tasks_and_no_others(tiny_root, tmp_path, say):
    say("two nodes on one Postgres; restarting each in turn while an 8 s clip runs (a few minutes on 2 cores)")
    url = shared_server().fresh_database()

    def node(name: str, port: int | None = None) -> ServerProcess:
        return ServerProcess(tmp_path / name, tiny_root, port=port, LTX_DATABASE_URL=url, LTX_NODE_ID=f"node-{name}",
                             LTX_LEASE_SECONDS=LONG_LEASE).start()  # fmt: skip

    nodes = {name: node(name) for name in ("a", "b")}
    try:
        task = video_task(width=640, height=360, duration=8, fps=25)
        assert nodes["a"].post([task])[0] == 200
        runner = running_node(nodes, task["taskUUID"])
        other = "b" if runner == "a" else "a"

        # The other node restarts: it must leave the running task alone (attempts stays 1).
        nodes[other].stop()
        nodes[other] = node(other, nodes[other].port)
        item = details(nodes[other], task["taskUUID"])
        assert (item["status"], item["attempts"]) == ("running", 1), item

        # The node running it dies (SIGKILL, workers too) and restarts: it requeues its own task at once, without
        # waiting for the lease, and the task runs again (on either node) and finishes.
        os.killpg(nodes[runner].process.pid, signal.SIGKILL)
        nodes[runner].process.wait(10)
        nodes[runner] = node(runner, nodes[runner].port)
        assert "requeued 1 task(s) left running by this node's previous workers" in nodes[runner].log()
        (result,) = nodes[other].wait_for_results(task["taskUUID"], timeout=240)
        item = details(nodes[runner], task["taskUUID"])
        assert (item["status"], item["attempts"], result["status"]) == ("succeeded", 2, "success"), item
    finally:
        for server in nodes.values():
            server.stop()
