"""A fleet's API node never imports torch, diffusers or transformers: `ltx-runtime serve --role api` (real weights
mode, no --demo) on a real SQLite store admits a task through the memory check against a GPU worker's budget and the
content classifier's files check, answers getResponse, cancels it, and refuses a clip over the budget.

How it is seen: the server runs with PYTHONPROFILEIMPORTTIME=1 (what `python -X importtime` sets), so CPython itself
writes one line to the server's log for every module the process imports, at the moment it imports it, for the whole
life of the process; nothing in the server takes part in the check."""

from __future__ import annotations

import os

from support.server_harness import ServerProcess, video_task

from server.store import open_store

GIB = 1024**3
NEVER_IMPORTED = ("torch", "diffusers", "transformers")


def imported_modules(log: str) -> set[str]:
    """The modules in `-X importtime` lines: `import time: <self us> | <cumulative us> | <indented module name>`."""
    return {line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")}


def test_an_api_node_admits_polls_and_cancels_without_importing_torch(tiny_root, tmp_path):
    classifier = tmp_path / "safety-checker"
    classifier.mkdir()
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):  # what admission looks for
        (classifier / name).write_bytes(b"{}")
    server = ServerProcess(tmp_path / "api", tiny_root, demo=False, LTX_ROLE="api", LTX_SAFETY_WEIGHTS=str(classifier),
                           PYTHONPROFILEIMPORTTIME="1")  # fmt: skip
    server.start(until="/health/live")
    try:
        # A GPU worker on another host, as its supervisor reports itself in the shared store: ready, 24 GiB budget.
        store = open_store(server.store_url)
        store.worker_state("gpu-host-1/worker0-0a1b2c3d", os.getpid(), "ready", memory_profile="low",
                           memory_budget=24 * GIB)  # fmt: skip
        store.close()

        task = video_task(model="lightricks:2@1", width=1920, height=1080, duration=6, fps=25,
                          safety={"checkContent": True})  # fmt: skip
        status, body = server.post([task])
        assert status == 200 and body["data"][0]["taskUUID"] == task["taskUUID"], body

        too_big = video_task(model="lightricks:2@1", width=3840, height=2160, duration=10, fps=50)
        status, body = server.post([too_big])
        (error,) = body["errors"]
        assert (status, error["code"], error["parameter"]) == (400, "unsupportedDimensions", "width")
        assert "limit of 24 GiB" in error["message"]  # the memory estimate ran in this process

        status, body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        assert status == 200 and [item["status"] for item in body["data"]] == ["processing"], body

        status, body = server.post([{"taskType": "cancelTask", "taskUUID": task["taskUUID"]}])
        assert status == 200 and body["data"][0]["status"] == "cancelled", body
        status, body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        assert body["errors"][0]["code"] == "taskCancelled", body
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log()[-3000:]

    modules = imported_modules(server.log())
    assert {"fastapi", "server.api.runware.service", "ltx_runtime.admission"} <= modules  # the lines are there
    assert not {name for name in modules if name.split(".")[0] in NEVER_IMPORTED}
