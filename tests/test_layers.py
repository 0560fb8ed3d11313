"""The layer rules of architecture.md, read from the source: adapters never import each other, and nothing below
them (task service, job type, store, worker, loops) imports an adapter; the library never imports the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("runware", "runcomfy")
BELOW_THE_ADAPTERS = ["jobs.py", "service.py", "tasks.py", "worker.py", "supervisor.py", "loops.py", "delivery.py",
                      "operations.py", "bodies.py", "settings.py", "auth.py", "netguard.py", "limits.py", "threads.py",
                      "store_sql.py", "store_sqlite.py", "store_postgres.py"]
STORE_BACKENDS = ("server.store_sql", "server.store_sqlite", "server.store_postgres")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what a module under server/ imports (relative imports resolved)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *(node.module.split(".") if node.module else ())))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapters_import_nothing_from_each_other(adapter):
    other = next(name for name in ADAPTERS if name != adapter)
    for path in (ROOT / "server" / adapter).glob("*.py"):
        assert not any(name.startswith(f"server.{other}") for name in imported_modules(path)), path


@pytest.mark.parametrize("file_name", BELOW_THE_ADAPTERS)
def test_the_layers_below_import_no_adapter(file_name):
    names = imported_modules(ROOT / "server" / file_name)
    assert not any(name.startswith(("server.runware", "server.runcomfy")) for name in names), names


def test_the_library_never_imports_the_server():
    for path in (ROOT / "ltx_runtime").rglob("*.py"):
        # cli.py's `serve` command is the one door from the library to the server (a lazy import inside it).
        if path.name != "cli.py":
            assert not any(name.startswith("server") for name in imported_modules(path)), path


def test_only_the_store_names_a_backend():
    """Everything else gets a TaskStore from open_store(url) (server/tasks.py), whatever the backend."""
    for path in (ROOT / "server").rglob("*.py"):
        if path.name not in ("tasks.py", "store_sql.py", "store_sqlite.py", "store_postgres.py"):
            assert not any(name.startswith(STORE_BACKENDS) for name in imported_modules(path)), path
