"""The load benchmark on both task stores side by side: SQLite, then Postgres, twice, alternating, in one session.

    PYTHONPATH=. .venv/bin/python scripts/loadbench_backends.py OUT_FOLDER

Postgres is a server of its own in a temp folder (tests/support/postgres_harness.py, the one the tests start), with a fresh
database per run; each run is `python -m server.ops.loadbench --json OUT_FOLDER/<store>-<round>.json`, whose summary is
printed. Figures: docs/performance.md.
"""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.postgres_harness import shared_server  # noqa: E402

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
postgres = shared_server()
for round_number in (1, 2):
    for store in ("sqlite", "postgres"):
        command = [sys.executable, "-m", "server.ops.loadbench", "--json", str(out / f"{store}-{round_number}.json")]
        if store == "postgres":
            command += ["--database-url", postgres.fresh_database()]
        started = time.time()
        run = subprocess.run(command, capture_output=True, text=True)
        print(f"== {store}, round {round_number}: {time.time() - started:.0f} s, exit code {run.returncode}")
        print(run.stdout, run.stderr[-2000:] if run.returncode else "", flush=True)
