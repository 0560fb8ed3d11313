"""The API's load benchmark: `python -m server.ops.loadbench` (docs/performance.md, "The API under load").

It starts a real server (`ltx-runtime serve --demo`: tiny random weights, one CPU worker, which is busy generating the
submitted clips during the whole run), or targets a running one with `--url`, then:

1. submit: `--clients` clients at once, each sending `--tasks` videoInference tasks one after the other over REST;
   the ack latency of each;
2. poll: `--pollers` clients each sending getResponse for one of the acked tasks every `--interval` seconds for
   `--seconds`; the latency of each poll, and the polls served per second against those asked for;
3. check: every acked task is found by getResponse (none lost).

Each client has an API key of its own (`<--api-key>-<n>`; a demo server accepts any key), so the per-key queue limit
does not refuse the submissions. It prints a summary and can write every figure as JSON (`--json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx


@dataclass
class LoadOptions:
    url: str | None = None
    clients: int = 100
    tasks: int = 10
    pollers: int = 200
    interval: float = 0.5
    seconds: float = 20.0
    api_key: str = "loadbench"
    database_url: str | None = None
    startup_timeout: float = 300.0


class LoadBenchError(Exception):
    pass


def video_task() -> dict:
    """A small clip, so that the one CPU worker keeps finishing some while the API is under load."""
    return {
        "taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "ltx-runtime:tiny@1",
        "positivePrompt": "a lighthouse in a storm, waves breaking on the rocks", "width": 128, "height": 72,
        "duration": 1, "fps": 8,
    }  # fmt: skip


def latency_summary(seconds: list[float]) -> dict:
    """p50, p99 and max in milliseconds (nearest rank)."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(seconds)

    def rank(share: float) -> float:
        return round(ordered[max(0, math.ceil(len(ordered) * share) - 1)] * 1000, 1)

    return {"count": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


async def _post(client: httpx.AsyncClient, key: str, tasks: list[dict]) -> tuple[float, dict]:
    started = time.perf_counter()
    response = await client.post("/v1", json=tasks, headers={"Authorization": f"Bearer {key}"})
    return time.perf_counter() - started, response.json()


async def submit_phase(client: httpx.AsyncClient, options: LoadOptions) -> tuple[dict, list[tuple[str, str]]]:
    latencies: list[float] = []
    acked: list[tuple[str, str]] = []  # (key, taskUUID)
    errors: list[str] = []

    async def one_client(number: int) -> None:
        key = f"{options.api_key}-{number}"
        for _ in range(options.tasks):
            task = video_task()
            try:
                seconds, body = await _post(client, key, [task])
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
                continue
            latencies.append(seconds)
            if body.get("errors"):
                errors.append(body["errors"][0].get("code", "?"))
            elif body.get("data", [{}])[0].get("taskUUID") == task["taskUUID"]:
                acked.append((key, task["taskUUID"]))

    started = time.perf_counter()
    await asyncio.gather(*(one_client(n) for n in range(options.clients)))
    elapsed = time.perf_counter() - started
    phase = {
        "clients": options.clients, "tasks_per_client": options.tasks, "sent": len(latencies) + len(errors),
        "acked": len(acked), "errors": len(errors), "error_samples": sorted(set(errors))[:5],
        "seconds": round(elapsed, 2), "served_rps": round(len(latencies) / elapsed, 1),
        "latency": latency_summary(latencies),
    }  # fmt: skip
    return phase, acked


async def poll_phase(client: httpx.AsyncClient, options: LoadOptions, acked: list[tuple[str, str]]) -> dict:
    """Each poller asks on a fixed schedule for `seconds` (every `interval` from its start); a poll that comes back
    late is followed at once by the next one, so a slow server serves fewer than the `pollers / interval` polls per
    second asked for. The served rate counts the polls sent within `seconds` and answered, over `seconds`."""
    latencies: list[float] = []
    errors: list[str] = []

    async def one_poller(number: int) -> None:
        await asyncio.sleep(options.interval * number / options.pollers)  # spread the pollers over one interval
        next_poll = time.perf_counter()
        deadline = next_poll + options.seconds
        turn = 0
        while next_poll < deadline:
            key, task_uuid = acked[(number + turn * options.pollers) % len(acked)]
            turn += 1
            try:
                seconds, body = await _post(client, key, [{"taskType": "getResponse", "taskUUID": task_uuid}])
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
            else:
                latencies.append(seconds)
                if body.get("errors") and body["errors"][0].get("code") != "taskFailed":
                    errors.append(body["errors"][0].get("code", "?"))
            next_poll = max(next_poll + options.interval, time.perf_counter())
            await asyncio.sleep(next_poll - time.perf_counter())

    await asyncio.gather(*(one_poller(n) for n in range(options.pollers)))
    return {
        "pollers": options.pollers, "interval_s": options.interval, "seconds": options.seconds,
        "asked_rps": round(options.pollers / options.interval, 1),
        "served_rps": round(len(latencies) / options.seconds, 1),
        "served": len(latencies), "errors": len(errors), "error_samples": sorted(set(errors))[:5],
        "latency": latency_summary(latencies),
    }  # fmt: skip


async def lost_tasks(client: httpx.AsyncClient, acked: list[tuple[str, str]]) -> list[str]:
    """The acked tasks getResponse does not find (one request per key, with all of its tasks)."""
    by_key: dict[str, list[str]] = {}
    for key, task_uuid in acked:
        by_key.setdefault(key, []).append(task_uuid)
    lost: list[str] = []

    async def check(key: str, task_uuids: list[str]) -> None:
        polls = [{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in task_uuids]
        _, body = await _post(client, key, polls)
        found = {item["taskUUID"] for item in body.get("data", [])}
        found |= {error.get("taskUUID") for error in body.get("errors", []) if error.get("code") == "taskFailed"}
        lost.extend(task_uuid for task_uuid in task_uuids if task_uuid not in found)

    semaphore = asyncio.Semaphore(20)

    async def bounded(key: str, task_uuids: list[str]) -> None:
        async with semaphore:
            await check(key, task_uuids)

    await asyncio.gather(*(bounded(key, task_uuids) for key, task_uuids in by_key.items()))
    return lost


async def run_load(options: LoadOptions, url: str, server_pid: int | None = None) -> dict:
    """The three phases. With the API process's pid (a server it started), each phase also reports the CPU time that
    process spent per request: a figure that moves far less than latency when other work shares the CPUs."""
    limits = httpx.Limits(max_connections=options.clients + options.pollers, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        cpu_before = process_cpu_seconds(server_pid)
        submit, acked = await submit_phase(client, options)
        if not acked:
            raise LoadBenchError(f"no task was acked: {submit['error_samples']}")
        cpu_between = process_cpu_seconds(server_pid)
        poll = await poll_phase(client, options, acked)
        cpu_after = process_cpu_seconds(server_pid)
        lost = await lost_tasks(client, acked)
    if server_pid is not None:
        submit["server_cpu_ms_per_request"] = round((cpu_between - cpu_before) * 1000 / max(1, submit["sent"]), 2)
        poll["server_cpu_ms_per_request"] = round((cpu_after - cpu_between) * 1000 / max(1, poll["served"]), 2)
    return {"submit": submit, "poll": poll, "lost": len(lost), "lost_samples": lost[:5]}


def process_cpu_seconds(pid: int | None) -> float:
    """User plus system CPU seconds of one process (Linux /proc), 0 without a pid."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def started_server(options: LoadOptions, data_dir: Path) -> Iterator[tuple[str, int]]:
    """`ltx-runtime serve --demo` on a loopback port, ready (its worker loaded); stopped on the way out."""
    port = _free_port()
    env = {
        **os.environ, "LTX_DATA_DIR": str(data_dir), "LTX_PORT": str(port), "LTX_X264_PRESET": "ultrafast",
        "LTX_MAX_PENDING_PER_KEY": str(max(options.tasks, 20)),
    }  # fmt: skip
    env.pop("LTX_API_KEYS", None)  # demo mode with no key configured: each client's own key is accepted
    if options.database_url:
        env["LTX_DATABASE_URL"] = options.database_url
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--demo"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.time() + options.startup_timeout
        while True:
            if process.poll() is not None:
                raise LoadBenchError(f"the server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.time() > deadline:
                raise LoadBenchError(f"the server was not ready after {options.startup_timeout} s")
            try:
                if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": [round(value, 2) for value in os.getloadavg()]}  # fmt: skip


def run_loadbench(options: LoadOptions, command: str = "") -> dict:
    result: dict = {"command": command, "options": vars(options).copy(), "machine_before": machine()}
    if options.url:
        result["server"] = {"url": options.url, "started": False}
        result.update(asyncio.run(run_load(options, options.url)))
    else:
        with tempfile.TemporaryDirectory(prefix="ltx-loadbench-") as data_dir:
            with started_server(options, Path(data_dir)) as (url, pid):
                store = options.database_url or "sqlite (default)"
                result["server"] = {"url": url, "started": True, "database_url": store}
                result.update(asyncio.run(run_load(options, url, pid)))
    result["machine_after"] = machine()
    return result


def render(result: dict) -> str:
    submit, poll = result["submit"], result["poll"]

    def figures(phase: dict) -> str:
        latency = phase["latency"]
        cpu = phase.get("server_cpu_ms_per_request")
        return f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms" + (
            f"; server CPU {cpu} ms/request" if cpu is not None else ""
        )

    return "\n".join([
        f"server {result['server']['url']} (load average before {result['machine_before']['load_average']}, "
        f"after {result['machine_after']['load_average']}, {result['machine_before']['cpus']} CPUs)",
        f"submit: {submit['clients']} clients x {submit['tasks_per_client']} tasks: {submit['acked']}/{submit['sent']} "
        f"acked, {submit['errors']} errors, {submit['served_rps']} req/s; ack {figures(submit)}",
        f"poll: {poll['pollers']} pollers every {poll['interval_s']} s for {poll['seconds']} s: served "
        f"{poll['served_rps']} of {poll['asked_rps']} req/s asked, {poll['errors']} errors; getResponse {figures(poll)}",
        f"lost: {result['lost']} of {submit['acked']} acked tasks not found by getResponse",
    ]) + "\n"  # fmt: skip


def parse_options(argv: list[str] | None = None) -> tuple[LoadOptions, Path | None]:
    defaults = LoadOptions()
    parser = argparse.ArgumentParser(
        prog="python -m server.ops.loadbench",
        description="Load benchmark of the Runware API: submission acks, then getResponse pollers, then a check that "
        "no acked task is lost. Starts `ltx-runtime serve --demo` (tiny weights, one CPU worker) unless --url is "
        "given.",
    )  # fmt: skip
    add = parser.add_argument
    add("--url", help="Target a running server (e.g. http://127.0.0.1:8000) instead of starting one.")
    add("--clients", type=int, default=defaults.clients, help="Submitting clients, all at once (default %(default)s).")
    add("--tasks", type=int, default=defaults.tasks,
        help="videoInference tasks per client, one after the other (default %(default)s).")
    add("--pollers", type=int, default=defaults.pollers, help="getResponse pollers (default %(default)s).")
    add("--interval", type=float, default=defaults.interval,
        help="Seconds between one poller's polls (default %(default)s).")
    add("--seconds", type=float, default=defaults.seconds, help="How long the pollers poll (default %(default)s).")
    add("--api-key", default=defaults.api_key,
        help="Client n uses the key <API_KEY>-<n> (default %(default)s); a demo server with no LTX_API_KEYS accepts "
        "any key.")
    add("--database-url", help="The task store of the server it starts (passed as LTX_DATABASE_URL), e.g. "
        "postgresql://...; default: the server's SQLite file.")
    add("--json", type=Path, dest="json_path", metavar="PATH", help="Write every figure as JSON here.")
    arguments = parser.parse_args(argv)
    for name in ("clients", "tasks", "pollers"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name} must be 1 or more")
    if arguments.interval <= 0 or arguments.seconds <= 0:
        parser.error("--interval and --seconds must be above 0")
    fields = {name: getattr(arguments, name) for name in vars(defaults) if hasattr(arguments, name)}
    return LoadOptions(**fields), arguments.json_path


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_options(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # stop the server it started on the way out
    try:
        command = shlex.join(["python", "-m", "server.ops.loadbench", *(argv or sys.argv[1:])])
        result = run_loadbench(options, command=command)
    except LoadBenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
