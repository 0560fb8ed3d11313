"""Temporary (removed with the migrations): the schema written once builds what the v4 migrations built."""
import pytest
from support.postgres_harness import shared_server
from support.schema_introspection import describe

from server.store import open_store
from server.store.postgres import PostgresTaskStore
from server.store.schema import open_schema
from server.store.sqlite import SQLiteTaskStore

TYPES = {"sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER", "real": "REAL"},
         "postgres": {"id": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "real": "DOUBLE PRECISION"}}


def squashed(backend_class, types):
    class Squashed(backend_class):
        def _migrate(self):
            with self._transaction() as db:
                open_schema(db, types, set(), "new")
    return Squashed


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_squashed_schema_is_what_v4_built(backend, tmp_path):
    if backend == "sqlite":
        old, new = open_store(f"sqlite:///{tmp_path}/old.sqlite3"), squashed(SQLiteTaskStore, TYPES[backend])(tmp_path / "new.sqlite3")
    else:
        old, new = open_store(shared_server().fresh_database()), squashed(PostgresTaskStore, TYPES[backend])(shared_server().fresh_database())
    before, after = describe(old), describe(new)
    assert (before.pop("version"), after.pop("version")) == ([4], [1])
    assert after == before
    print(backend, "tables", sorted(after["tables"]), "indexes", sorted(after["indexes"]))
