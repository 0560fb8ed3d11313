"""What a task store's database holds, read back from the database's own catalog (SQLite's `sqlite_master` and
pragmas, Postgres's `information_schema` and `pg_catalog`), in one plain shape for both dialects: tables with their
columns (type, not null, default), primary key, unique constraints and foreign keys; indexes with their table, columns,
uniqueness and partial condition; the schema version and the rows of `task_totals`.

`describe(store)` keeps each dialect's own type names; `neutral(description)` maps them to families (integer, real,
text) and the auto-numbered ids to one token, so that a SQLite and a Postgres store can be compared.
"""

from __future__ import annotations

import re

from server.store.sqlite import SQLiteTaskStore

TYPE_FAMILIES = {"integer": "integer", "bigint": "integer", "real": "real", "double precision": "real", "text": "text"}
IDENTITY = "<identity>"
"""The default of an auto-numbered id (SQLite's INTEGER PRIMARY KEY AUTOINCREMENT, Postgres's sequence)."""


def describe(store) -> dict:
    describe_dialect = _describe_sqlite if isinstance(store, SQLiteTaskStore) else _describe_postgres
    described = describe_dialect(store._run)
    described["version"] = [row["version"] for row in store._run("SELECT version FROM schema_version")]
    described["task_totals"] = sorted(
        tuple(row.values()) for row in store._run("SELECT outcome, n, timed, seconds FROM task_totals")
    )
    return described


def neutral(described: dict) -> dict:
    """The description with type names as families (INTEGER and BIGINT both integers, REAL and DOUBLE PRECISION both
    reals): what both dialects must agree on."""
    tables = {
        name: {**table, "columns": {column: (TYPE_FAMILIES[kind.lower()], not_null, default)
                                    for column, (kind, not_null, default) in table["columns"].items()}}
        for name, table in described["tables"].items()
    }  # fmt: skip
    return {**described, "tables": tables}


def _describe_sqlite(run) -> dict:
    tables, indexes = {}, {}
    for table in run("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        name = table["name"]
        autoincrement = "AUTOINCREMENT" in table["sql"].upper()
        columns, primary_key = {}, []
        for column in sorted(run(f"PRAGMA table_info({name})"), key=lambda row: row["pk"]):
            identity = autoincrement and column["pk"] == 1
            default = IDENTITY if identity else column["dflt_value"]
            # key columns count as not null: Postgres makes them so, SQLite only for the rowid (the store never writes a
            # null key)
            columns[column["name"]] = (column["type"], bool(column["notnull"] or column["pk"]), default)
            if column["pk"]:
                primary_key.append(column["name"])
        unique = set()
        for index in run(f"PRAGMA index_list({name})"):
            index_columns = tuple(row["name"] for row in sorted(run(f"PRAGMA index_info({index['name']})"),
                                                                key=lambda row: row["seqno"]))  # fmt: skip
            if index["origin"] == "u":
                unique.add(index_columns)
            elif index["origin"] == "c":
                sql = run("SELECT sql FROM sqlite_master WHERE name = ?", (index["name"],))[0]["sql"]
                where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
                indexes[index["name"]] = (name, index_columns, bool(index["unique"]), _condition(where))
        foreign_keys = {((row["from"],), row["table"], (row["to"],)) for row in run(f"PRAGMA foreign_key_list({name})")}
        tables[name] = {"columns": columns, "primary_key": tuple(primary_key), "unique": unique,
                        "foreign_keys": foreign_keys}  # fmt: skip
    return {"tables": tables, "indexes": indexes}


def _describe_postgres(run) -> dict:
    tables = {}
    for row in run("SELECT table_name, column_name, data_type, is_nullable, column_default FROM"
                   " information_schema.columns WHERE table_schema = current_schema()"):  # fmt: skip
        default = row["column_default"]
        if default is not None and default.startswith("nextval("):
            default = IDENTITY
        elif default is not None:
            default = re.sub(r"::[a-z ]+$", "", default)  # '0'::text -> '0'
        table = tables.setdefault(row["table_name"], {"columns": {}, "primary_key": (), "unique": set(),
                                                      "foreign_keys": set()})  # fmt: skip
        table["columns"][row["column_name"]] = (row["data_type"], row["is_nullable"] == "NO", default)
    for row in run("SELECT c.relname AS table_name, k.contype, pg_get_constraintdef(k.oid) AS definition"
                   " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
                   " WHERE c.relnamespace = current_schema()::regnamespace"):  # fmt: skip
        table, definition = tables[row["table_name"]], row["definition"]
        if row["contype"] == "p":
            table["primary_key"] = _names(definition)
        elif row["contype"] == "u":
            table["unique"].add(_names(definition))
        elif row["contype"] == "f":
            found = re.fullmatch(r"FOREIGN KEY \((.+)\) REFERENCES (\w+)\((.+)\)", definition)
            table["foreign_keys"].add((_names(found[1]), found[2], _names(found[3])))
    indexes = {}
    for row in run("SELECT tablename, indexname, indexdef FROM pg_indexes i WHERE schemaname = current_schema()"
                   " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname)"):  # fmt: skip
        found = re.fullmatch(r"CREATE (UNIQUE )?INDEX \w+ ON [\w.]+ USING btree \(([^)]+)\)(?: WHERE (.+))?",
                             row["indexdef"])  # fmt: skip
        indexes[row["indexname"]] = (row["tablename"], _names(found[2]), bool(found[1]), _condition(found[3]))
    return {"tables": tables, "indexes": indexes}


def _names(text: str) -> tuple[str, ...]:
    """`PRIMARY KEY (task_id, idx)` or `task_id, idx` -> ('task_id', 'idx')."""
    inside = text[text.index("(") + 1 : text.rindex(")")] if "(" in text else text
    return tuple(name.strip() for name in inside.split(","))


def _condition(where: str | None) -> str | None:
    """A partial index's condition without the parentheses Postgres adds: `(x IS NOT NULL)` -> `x IS NOT NULL`."""
    if where is None:
        return None
    where = where.strip()
    while where.startswith("(") and where.endswith(")"):
        where = where[1:-1].strip()
    return where
