"""The layer rules of architecture.md, read from the source and derived from the folders, so that a new file is
covered by being put in its box: `server/<box>/` for each box, the boxes ranked from the top (the contracts) down; a box
imports only the boxes below it; the contract adapters (`server/api/<adapter>/`) never import each other; the library
never imports the server; and nothing, anywhere in server/ or ltx_runtime/, imports in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = next(folder for folder in Path(__file__).resolve().parents if (folder / "pyproject.toml").is_file())
SERVER = ROOT / "server"
BOXES = ("api", "ops", "workers", "tasks", "store", "media")
"""server/'s folders from the top down (each may import those after it): the contracts and their HTTP code; the
operational routes and loops; the worker processes; the task service and its job type; the task store; the media
store, its guarded HTTP client and deliveries."""
ASSEMBLY = ("server.app", "server.main", "server.serve")
"""The modules at server/'s top that assemble the boxes (`serve`, the app); the others there (settings, logs) are
shared by every box and import none."""
STORE_BACKENDS = ("server.store.sql", "server.store.sqlite", "server.store.postgres")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in ("server", "ltx_runtime") for path in (ROOT / package).rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what a module imports, at its top or inside a function (relative imports resolved); for
    `from package import name`, the submodule package.name when there is one, else the package."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join((*base, *(node.module.split(".") if node.module else ())))
            names.update(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                         for alias in node.names)  # fmt: skip
    return names


def box_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "server" and parts[1] in BOXES else None


def test_every_folder_of_the_server_is_a_box():
    folders = {path.name for path in SERVER.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == set(BOXES)
    assert all((SERVER / box / "__init__.py").is_file() for box in BOXES)


@pytest.mark.parametrize("box", BOXES)
def test_a_box_imports_only_the_boxes_below_it(box):
    above = set(BOXES[: BOXES.index(box)])
    for path in (SERVER / box).rglob("*.py"):
        upward = {name for name in imported_modules(path) if box_of(name) in above}
        assert not upward and not any(name.startswith(ASSEMBLY) for name in imported_modules(path)), (path, upward)


def test_the_shared_modules_at_the_top_import_no_box():
    for path in SERVER.glob("*.py"):
        if module_name(path) not in ASSEMBLY:
            assert not any(box_of(name) for name in imported_modules(path)), path


def test_adapters_import_nothing_from_each_other_and_the_shared_http_code_no_adapter():
    adapters = [path.name for path in (SERVER / "api").iterdir() if (path / "__init__.py").is_file()]
    assert {"runware", "runcomfy", "playground"} <= set(adapters)
    for adapter in adapters:
        others = tuple(f"server.api.{name}" for name in adapters if name != adapter)
        for path in (SERVER / "api" / adapter).rglob("*.py"):
            assert not any(name.startswith(others) for name in imported_modules(path)), path
    every_adapter = tuple(f"server.api.{name}" for name in adapters)
    for path in (SERVER / "api").glob("*.py"):
        assert not any(name.startswith(every_adapter) for name in imported_modules(path)), path


def test_the_library_never_imports_the_server():
    for path in (ROOT / "ltx_runtime").rglob("*.py"):
        assert not any(name.split(".")[0] == "server" for name in imported_modules(path)), path


def test_only_the_store_names_a_backend():
    """Everything else gets a TaskStore from open_store(url) (server/store/__init__.py), whatever the backend."""
    for path in SERVER.rglob("*.py"):
        if not module_name(path).startswith("server.store"):
            assert not any(name.startswith(STORE_BACKENDS) for name in imported_modules(path)), path


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each circle met by a depth-first walk of the graph, as the list of modules around it."""
    circles, state, trail = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        trail.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                circles.append(trail[trail.index(imported):] + [imported])
            elif imported not in state:
                visit(imported)
        trail.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return circles


def test_nothing_imports_in_a_circle():
    graph = {name: {imported for imported in imported_modules(path) if imported in MODULES and imported != name}
             for name, path in MODULES.items()}  # fmt: skip
    assert import_circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
