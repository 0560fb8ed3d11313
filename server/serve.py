"""What `ltx-runtime serve` runs: settings, API keys and the uvicorn server.

Demo mode (tiny random weights) is only ever asked for (--demo, LTX_DEMO), on every node of a demo fleet. Without it,
a node with workers and no usable CUDA GPU still starts, checks keys and answers, but its workers refuse to load and
its readiness says why: a broken GPU is a failed readiness, not another product that accepts any key.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
from contextlib import suppress

import uvicorn

from .api.auth import ApiKeys, load_or_create_key
from .api.limits import KeyCheckLimiter
from .app import create_app
from .logs import setup_logging
from .ops.routes import DEMO_WARNING
from .settings import Settings
from .store.schema import SchemaMismatch

log = logging.getLogger("ltx_runtime.server")


def run(
    host: str | None = None,
    port: int | None = None,
    public_url: str | None = None,
    demo: bool = False,
    log_format: str | None = None,
    role: str | None = None,
) -> None:
    options = (("host", host), ("port", port), ("public_url", public_url), ("log_format", log_format), ("role", role))
    overrides = {name: value for name, value in options if value}
    settings = Settings(**overrides, **({"demo": True} if demo else {}))
    setup_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Before anything touches the task store: at start-up a node requeues what its previous workers held, so a second
    # process with the same node id, or one that is about to fail on a busy port, must stop here.
    node_lock = hold_node_lock(settings)  # noqa: F841 - held for the process's lifetime
    listening = bind_port(settings.host, settings.port)
    if settings.role != "api" and not settings.demo:
        import torch

        if not torch.cuda.is_available():  # never a silent switch to demo mode: that would accept any key
            log.error("no CUDA GPU found: the workers cannot run real weights, and /health/ready will say so; "
                      "start with --demo for the tiny random demo weights")  # fmt: skip
    if settings.demo:
        banner = "!" * len(DEMO_WARNING)
        log.warning("%s\n%s\n%s", banner, DEMO_WARNING, banner)
    log.info("role: %s", settings.role)
    try:
        app = create_app(settings, api_keys(settings) if settings.role != "worker" else None)
    except SchemaMismatch as error:
        log.error("%s", error)
        raise SystemExit(STARTUP_FAILURE) from None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_body_bytes,
        log_config=None,  # setup_logging's format for uvicorn's lines too
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
    )
    with suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn re-raises it once stopped (uvicorn.run swallows it too)
        DrainingServer(config).run(sockets=[listening])


STARTUP_FAILURE = 3
"""The exit code of a server that could not start (uvicorn's own)."""


def hold_node_lock(settings: Settings) -> int:
    """An exclusive lock on the node's lock file in the data folder, held until the process exits (the OS releases
    it even after a SIGKILL): two live processes never share a node id, so neither requeues the other's tasks."""
    path = settings.data_dir / f"node-{settings.node}.lock"
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "another process"
        log.error("node %s is already running (pid %s holds %s): stop it first, or give this server its own data "
                  "folder (LTX_DATA_DIR) or node id (LTX_NODE_ID)", settings.node, holder, path)  # fmt: skip
        raise SystemExit(STARTUP_FAILURE) from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, str(os.getpid()).encode(), 0)
    return handle


def bind_port(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the app starts (uvicorn would bind only after the app's start-up, which
    requeues tasks and starts workers)."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        log.error("cannot listen on %s port %d: %s (another server there? choose another with --port or LTX_PORT)",
                  host, port, error.strerror or error)  # fmt: skip
        raise SystemExit(STARTUP_FAILURE) from None
    log.info("listening on http://%s:%d", host, port)  # uvicorn says so only for a socket it binds itself
    return listening


class DrainingServer(uvicorn.Server):
    """uvicorn with a graceful SIGTERM: the app drains first (`app.state.drain`: no new tasks, readiness 503, running
    generations finish within the grace period) while uvicorn still answers, then uvicorn stops as usual and the
    process exits 0. A second SIGTERM ends the drain at once. Ctrl-C (SIGINT) does not drain: the workers are stopped
    (SIGTERM, then SIGKILL) and their running tasks go back to the queue to start over."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self._sigterms = 0
        self._draining: asyncio.Task | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if sig != signal.SIGTERM:
            pool = self.config.app.state.pool
            if sig == signal.SIGINT and pool is not None and pool.busy_workers:
                log.warning("Ctrl-C: stopping without draining: %d running task(s) go back to the queue and start "
                            "over from 0 %% at the next start (SIGTERM drains: running tasks finish within "
                            "LTX_SHUTDOWN_GRACE_SECONDS)", pool.busy_workers)  # fmt: skip
            return super().handle_exit(sig, frame)
        self._sigterms += 1
        loop = asyncio.get_running_loop()
        if self._sigterms == 1:
            log.warning("SIGTERM: draining (a second SIGTERM stops at once)")
            loop.call_soon_threadsafe(self._start_draining)
        else:
            log.warning("second SIGTERM: stopping now")
            pool = self.config.app.state.pool
            if pool is None:  # an API node: only deliveries to wait for
                self.should_exit = True
            else:
                loop.call_soon_threadsafe(pool.stop_now)

    def _start_draining(self) -> None:
        self._draining = asyncio.create_task(self._drain_then_exit())  # kept: the loop holds tasks weakly

    async def _drain_then_exit(self) -> None:
        try:
            await self.config.app.state.drain()
        finally:
            self.should_exit = True


def api_keys(settings: Settings) -> ApiKeys:
    """The configured keys; else the key kept in the data folder, created and printed (once) on first start. In demo
    mode with no key configured, any key is accepted (the kept key too, so that the same commands work later)."""
    throttle = KeyCheckLimiter(settings.key_check_failures_per_second, settings.key_check_failures_burst)
    if settings.api_key_list:
        return ApiKeys(settings.api_key_list, throttle=throttle)
    key, created = load_or_create_key(settings.data_dir)
    where = settings.data_dir / "api_key"
    if created:
        log.warning("created an API key, kept in %s: %s", where, key)
    else:
        log.info("API key: the one kept in %s (or set LTX_API_KEYS)", where)
    if settings.demo:
        log.warning("demo mode with no API key configured: ANY API key is accepted (set LTX_API_KEYS to check keys)")
        return ApiKeys([], accept_any=True, throttle=throttle)
    return ApiKeys([key], throttle=throttle)
