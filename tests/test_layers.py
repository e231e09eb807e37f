"""The layout's rules, read from the source: who may publish, who may know the transport,
how long a module may grow, and that nothing imports the old top-level `server`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server" / "parley"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400


def name_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_events_module_publishes_to_the_broker() -> None:
    publishers = set()
    for path in MODULES:
        module = name_of(path)
        if module == "parley.events" or module.startswith("parley.broker"):
            continue  # the publisher itself, and the backends' own plumbing
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("publish", "publish_many")
            ):
                publishers.add(f"{module}:{node.lineno}")
    assert publishers == set()


TRANSPORT = ("starlette", "uvicorn", "websockets", "parley.gateway", "parley.http", "parley.app")


@pytest.mark.parametrize(
    "module",
    [
        "parley.chat",
        "parley.events",
        "parley.batching",
        "parley.typing_tracker",
        "parley.validation",
        "parley.store",
    ],
)
def test_the_use_cases_and_below_know_no_transport(module: str) -> None:
    paths = [p for p in MODULES if name_of(p) == module or name_of(p).startswith(module + ".")]
    assert paths, module
    leaks = {
        f"{name_of(path)} imports {imported}"
        for path in paths
        for imported in imports_of(path)
        if imported.startswith(TRANSPORT)
    }
    assert leaks == set()


def test_the_store_calls_no_layer_above_it() -> None:
    above = ("parley.chat", "parley.events", "parley.hub", "parley.broker", "parley.gateway")
    leaks = {
        f"{name_of(path)} imports {imported}"
        for path in MODULES
        if name_of(path).startswith("parley.store")
        for imported in imports_of(path)
        if imported.startswith(above)
    }
    assert leaks == set()


SDK = ROOT / "clients" / "python" / "parley_client"
PAGE = PACKAGE / "static"


def test_no_module_is_longer_than_the_limit() -> None:
    # The JavaScript SDK is one file by design (clients/js/parley.js): an app imports one
    # module with no build step.
    sources = [*MODULES, *SDK.glob("*.py"), *PAGE.glob("*.js")]
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in sources}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_the_python_sdk_needs_nothing_but_websockets() -> None:
    allowed = set(sys.stdlib_module_names) | {"websockets", "parley_client"}
    needed = {
        f"{path.name} imports {imported}"
        for path in SDK.glob("*.py")
        for imported in imports_of(path)
        if imported.split(".")[0] not in allowed
    }
    assert needed == set()


def test_nothing_imports_the_old_top_level_server_package() -> None:
    sources = [*MODULES, *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    old = {
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in sources
        for imported in imports_of(path)
        if imported == "server" or imported.startswith("server.")
    }
    assert old == set()
