"""The `ltx-runtime` script (also `python -m server`): the library's commands (ltx_runtime/cli.py) with `serve` added,
composed here so that the library never imports the server. Light: `generate` loads no part of the server."""

from __future__ import annotations

from typing import Optional

import typer

from ltx_runtime import cli


def main() -> None:
    cli.app.command()(serve)
    cli.main()


def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on (default: 127.0.0.1; env LTX_HOST)."),
    port: Optional[int] = typer.Option(None, help="Port (default: 8000; env LTX_PORT)."),
    public_url: Optional[str] = typer.Option(None, help="Base of the video URLs given to clients (default: http://HOST:PORT; env LTX_PUBLIC_URL)."),
    demo: bool = typer.Option(False, "--demo", help="Serve tiny random weights (never automatic: without it and without a CUDA GPU, readiness fails)."),
    log_format: Optional[str] = typer.Option(None, "--log-format", help="text (default) or json: one JSON object per line, for log shippers (env LTX_LOG_FORMAT)."),
    role: Optional[str] = typer.Option(None, "--role", help="all (default): API and GPU workers on one box; api: the API, media and deliveries, no workers (no GPU needed); worker: the GPU workers only, with /health and /metrics on the port. A fleet's nodes share one task store and media location (env LTX_ROLE)."),
) -> None:
    """Run the Runware-compatible server: REST and WebSocket videoInference on /v1. Settings: LTX_* variables."""
    if log_format not in (None, "text", "json"):
        cli.fail("--log-format: choose text or json", code=2)
    if role not in (None, "all", "api", "worker"):
        cli.fail("--role: choose all, api or worker", code=2)
    from .serve import run  # the server itself (FastAPI, uvicorn): only for `serve`

    run(host=host, port=port, public_url=public_url, demo=demo, log_format=log_format, role=role)
