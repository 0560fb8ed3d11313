"""What a /metrics scrape costs the task store with many finished tasks: the counters it reads now (`task_totals` and an
index range over unfinished tasks) side by side with the scans it ran before (a GROUP BY over every task, a SUM over
every finished one), in one run on one SQLite file.

    .venv/bin/python scripts/bench_metrics.py [--tasks 300000] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.store import open_store  # noqa: E402

SCANS = (  # the statements a scrape ran before issue 27
    "SELECT status, COUNT(*) AS n FROM tasks GROUP BY status",
    "SELECT COUNT(*) AS n, COALESCE(SUM(finished_at - started_at), 0) AS seconds FROM tasks"
    " WHERE status IN ('succeeded', 'failed') AND started_at IS NOT NULL",
    "SELECT MIN(created_at) AS t FROM tasks WHERE status = 'queued'",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'tasks.sqlite3'}")
        with store._transaction() as db:
            db.run_many(
                "INSERT INTO tasks (key_id, task_uuid, task_type, request, job, status, created_at, started_at,"
                " finished_at) VALUES ('k', ?, 'videoInference', '{}', '{}', 'succeeded', 1.0, 2.0, 3.0)",
                [(f"t{i}",) for i in range(args.tasks)],
            )
            db.run("UPDATE task_totals SET n = ?, timed = ?, seconds = ? WHERE outcome = 'succeeded'",
                   (args.tasks, args.tasks, float(args.tasks)))  # fmt: skip

        def counters() -> None:
            store.status_counts(), store.finished_durations(), store.oldest_queued_at()

        def scans() -> None:
            for sql in SCANS:
                store._run(sql)

        for name, scrape in (("counters (now)", counters), ("scans (before)", scans)):
            times = []
            for _ in range(args.scrapes):
                started = time.perf_counter()
                scrape()
                times.append((time.perf_counter() - started) * 1000)
            print(f"{name}: median {statistics.median(times):.2f} ms per scrape over {args.tasks} finished tasks")
        store.close()


if __name__ == "__main__":
    main()
