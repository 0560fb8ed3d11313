"""The schema is written once (server/store/schema.py): a fresh SQLite store and a fresh Postgres store, read back from
each database's own catalog, hold the same tables, columns (type family, not null, default), keys, constraints,
indexes, seeded counters and schema version."""

from support.postgres_harness import shared_server
from support.schema_introspection import IDENTITY, describe, neutral

from server.store import open_store
from server.store.schema import SCHEMA_VERSION, TABLES


def test_sqlite_and_postgres_build_the_same_schema(tmp_path):
    stores = [open_store(f"sqlite:///{tmp_path / 'tasks.sqlite3'}"), open_store(shared_server().fresh_database())]
    try:
        sqlite, postgres = (describe(store) for store in stores)
    finally:
        for store in stores:
            store.close()
    assert set(sqlite["tables"]) == set(TABLES) and sqlite["version"] == [SCHEMA_VERSION]
    assert neutral(sqlite) == neutral(postgres)
    # what the comparison covers is really there: the claim order's auto-numbered id, the indexes expiry and
    # listTasks read, a partial index's condition, the zeroed counters of /metrics
    assert sqlite["tables"]["tasks"]["columns"]["id"] == ("INTEGER", True, IDENTITY)
    assert postgres["tables"]["tasks"]["columns"]["id"] == ("bigint", True, IDENTITY)
    assert sqlite["indexes"]["results_by_expiry"] == ("results", ("expires_at",), False, "file_name IS NOT NULL")
    assert {"tasks_by_key", "tasks_by_finish", "images_by_age", "deliveries_by_state"} <= set(postgres["indexes"])
    assert postgres["task_totals"] == [("cancelled", 0, 0, 0.0), ("failed", 0, 0, 0.0), ("succeeded", 0, 0, 0.0)]
    # 64-bit where the values need it on Postgres (SQLite's integers always are): seeds, memory budgets, task ids
    columns = postgres["tables"]
    assert {columns["results"]["columns"]["seed"][0], columns["workers"]["columns"]["memory_budget"][0],
            columns["images"]["columns"]["task_id"][0], columns["deliveries"]["columns"]["task_id"][0]} == {"bigint"}
