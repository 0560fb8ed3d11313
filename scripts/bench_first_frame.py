"""What polls cost with three tasks whose first frame was sent as a data URI (a 1600x1600 PNG of noise, ~10 MB): the
size and median time of getResponse, getTaskDetails and listTasks, in process (httpx's ASGITransport, a real SQLite
file). Run it on two checkouts to compare:

    .venv/bin/python scripts/bench_first_frame.py
"""

from __future__ import annotations

import asyncio
import base64
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from server.app import create_app  # noqa: E402
from server.api.auth import ApiKeys  # noqa: E402
from server.settings import Settings  # noqa: E402
from support.server_harness import video_task  # noqa: E402

AUTH = {"Authorization": "Bearer bench-key"}


def noise_uri(side: int) -> str:
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def main() -> None:
    uri = noise_uri(1600)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(role="api", data_dir=Path(folder), demo=True), ApiKeys(["bench-key"]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            tasks = [video_task(inputs={"frameImages": [uri]}) for _ in range(3)]
            for task in tasks:
                answer = await client.post("/v1", json=[task], headers=AUTH)
                assert answer.status_code == 200, answer.text[:300]
            for body in ({"taskType": "getResponse", "taskUUID": tasks[0]["taskUUID"]},
                         {"taskType": "getTaskDetails", "taskUUID": tasks[0]["taskUUID"]}, {"taskType": "listTasks"}):  # fmt: skip
                times = []
                for _ in range(10):
                    started = time.perf_counter()
                    answer = await client.post("/v1", json=[body], headers=AUTH)
                    times.append(time.perf_counter() - started)
                print(f"{body['taskType']}: {len(answer.content) / 1e6:.3f} MB, "
                      f"median {statistics.median(times) * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
