"""A real PostgreSQL server for the tests: initdb in a temp folder, a unix socket there, one database per test.

Debian's `postgresql` package (scripts/install.sh --test installs it) provides the binaries. initdb refuses to run as
root, so as root the cluster belongs to the `postgres` user. Durability is switched off: the tests need the
semantics (locks, SKIP LOCKED, LISTEN/NOTIFY, the server's clock), not crash safety.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb): run scripts/install.sh --test, or apt-get install postgresql")
    return Path(initdb).parent


class PostgresServer:
    def __init__(self):
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="ltx-postgres-"))
        self.data = self.root / "data"
        self.port = 5432  # the socket's name in our own folder: no clash with another server
        self._as_postgres = os.geteuid() == 0
        self._count = 0

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)

    def start(self) -> "PostgresServer":
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(self._command(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                                     "--no-sync", "-E", "UTF8"), check=True, capture_output=True)  # fmt: skip
        options = f"-c listen_addresses='' -k {self.root} -p {self.port} -c fsync=off -c synchronous_commit=off" \
                  " -c full_page_writes=off -c max_connections=300"  # fmt: skip
        subprocess.run(self._command(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                                     "-l", str(self.root / "server.log"), "start"), check=True, capture_output=True)  # fmt: skip
        return self

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(self._command(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                           capture_output=True)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.root}&port={self.port}"

    def database(self, name: str) -> str:
        """The URL of database `name`, created if it does not exist yet."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def fresh_database(self) -> str:
        self._count += 1
        return self.database(f"test_{self._count}")

    def database_for(self, folder: Path) -> str:
        """The same database for the same data folder, so a server restarted on that folder finds its tasks."""
        return self.database("server_" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16])


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """One server per test session, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        _shared = PostgresServer().start()
        atexit.register(_shared.stop)
    return _shared


def server_store_url(folder: Path) -> str | None:
    """LTX_TEST_STORE=postgres: the Postgres database a test server on `folder` uses; None: the default SQLite file."""
    store = os.environ.get("LTX_TEST_STORE", "sqlite")
    if store == "sqlite":
        return None
    if store != "postgres":
        raise ValueError(f"LTX_TEST_STORE={store}: use sqlite or postgres")
    return shared_server().database_for(folder)
