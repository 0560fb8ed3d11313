"""Run one videoInference task through the current Runware SDK (`runware-sdk` 1.8.0) against this server.

Started by tests/e2e/test_client_matrix.py in a subprocess whose PYTHONPATH holds runware-sdk (its import name, `runware`,
is the legacy SDK's too). Prints one JSON line: the results, the progress values seen, the WebSocket session before
and after a forced reconnect, and every host name the SDK tried to resolve (anything but loopback is refused, so
nothing leaves the machine).

usage: runware_sdk_run.py TRANSPORT PORT API_KEY TASK_JSON [--drop-connection-at-progress N]
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

looked_up: list[str] = []
_getaddrinfo = socket.getaddrinfo


def loopback_only(host, *args, **kwargs):
    looked_up.append(str(host))
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise socket.gaierror(f"refused by the test: {host} is not loopback")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = loopback_only


async def main() -> None:
    from runware import RunOptions, Runware

    transport, port, api_key, task = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    drop_at = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--drop-connection-at-progress" else None
    client = Runware(
        api_key=api_key, transport=transport, ws_base_url=f"ws://127.0.0.1:{port}/v1",
        http_base_url=f"http://127.0.0.1:{port}/v1", validate=False,
    )  # fmt: skip
    progress: list[float] = []
    sessions: list[str | None] = []
    dropped = asyncio.Event()

    def on_progress(item) -> None:
        progress.append(item.get("progress"))
        if drop_at is not None and not dropped.is_set() and (item.get("progress") or 0) >= drop_at:
            dropped.set()

    async def drop_connection() -> None:
        await dropped.wait()
        ws_transport = client._ws_transport  # the SDK reconnects on its own, resuming its session
        sessions.append(ws_transport.session_id)
        await ws_transport._ws.close()

    dropper = asyncio.create_task(drop_connection()) if drop_at is not None else None
    try:
        results = await client.run(task, RunOptions(on_progress=on_progress))
    finally:
        if dropper is not None:
            dropper.cancel()
        if transport == "websocket":
            sessions.append(client._ws_transport.session_id)
        await client.close()
    print(json.dumps({"results": results, "progress": progress, "sessions": sessions, "looked_up": looked_up,
                      "dropped": dropped.is_set()}))


asyncio.run(main())
