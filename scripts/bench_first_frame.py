"""What polls cost with three tasks whose first frame was sent as a data URI (a 1600x1600 PNG of noise, ~10 MB): the
size and median time of getResponse, getTaskDetails and listTasks, in process (httpx's ASGITransport, a real SQLite
file). Run it on two checkouts to compare:

    .venv/bin/python scripts/bench_first_frame.py
"""

import asyncio, base64, io, json, sys, tempfile, time
from pathlib import Path
import httpx, numpy as np
from PIL import Image
sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests")]
from server.app import create_app
from server.auth import ApiKeys
from server.settings import Settings
from server_harness import video_task
AUTH = {"Authorization": "Bearer k"}
pixels = np.random.default_rng(7).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)
buf = io.BytesIO(); Image.fromarray(pixels).save(buf, format="PNG")
uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
async def main():
    with tempfile.TemporaryDirectory() as d:
        app = create_app(Settings(role="api", data_dir=Path(d), demo=True, max_image_pixels=4096*4096), ApiKeys(["k"]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
            tasks = [video_task(inputs={"frameImages": [uri]}) for _ in range(3)]
            for t in tasks:
                r = await c.post("/v1", json=[t], headers=AUTH); assert r.status_code == 200, r.text[:300]
            sizes = {}
            for name, body in (("getResponse", {"taskType": "getResponse", "taskUUID": tasks[0]["taskUUID"]}),
                               ("getTaskDetails", {"taskType": "getTaskDetails", "taskUUID": tasks[0]["taskUUID"]}),
                               ("listTasks", {"taskType": "listTasks"})):
                times = []
                for _ in range(10):
                    s = time.perf_counter(); r = await c.post("/v1", json=[body], headers=AUTH); times.append(time.perf_counter() - s)
                times.sort()
                print(f"{name}: {len(r.content)/1e6:.3f} MB, median {times[5]*1000:.1f} ms")
asyncio.run(main())
