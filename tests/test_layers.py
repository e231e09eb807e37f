"""The layout's rules, read from the source: which package may import which, no import
circles, who may publish, how long a module may grow, and that nothing imports the old
top-level `server`.

    entry      app  serve  cli  preflight  config        (wire everything together)
    adapters   gateway/  web/                            (a transport each)
    use cases  usecases/                                 (commit, then hand events over)
    beside     presence/                                 (who is online)
    below      fanout/  store/                           (events to devices; SQL)
    leaves     protocol  server_events  validation  errors  models  logs  metrics  safety
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server" / "parley"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400

LEAVES = {
    "protocol",
    "server_events",
    "validation",
    "errors",
    "models",
    "logs",
    "metrics",
    "config",
    "safety",
}
# What each part of the package may import of Parley, besides itself and the leaves.
MAY_IMPORT: dict[str, set[str]] = {
    "store": set(),
    "fanout": set(),
    "usecases": {"store", "fanout"},
    "presence": {"store", "fanout"},
    "gateway": {"usecases", "fanout", "store", "presence"},
    # Demo mode signs its visitors' tokens as the gateway checks them.
    "web": {"usecases", "fanout", "store", "gateway.auth"},
}
TRANSPORT = ("starlette", "uvicorn", "websockets", "httpx")


def name_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """``parley.usecases.chat`` -> ``usecases``; a top-level module is its own part."""
    return module.split(".")[1] if module.count(".") else ""


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def parley_imports(path: Path) -> set[str]:
    """The Parley modules ``path`` imports, at run time or for types alike."""
    modules = {name_of(p) for p in MODULES}
    return {name for name in imports_of(path) if name in modules}


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_layer_imports_only_what_is_below_it(part: str) -> None:
    allowed = MAY_IMPORT[part]
    leaks = set()
    for path in MODULES:
        module = name_of(path)
        if part_of(module) != part:
            continue
        for imported in parley_imports(path):
            target = imported.removeprefix("parley.")
            if target.split(".")[0] in LEAVES | {part} or target in ("parley", "__version__"):
                continue
            if not any(target == rule or target.startswith(rule + ".") for rule in allowed):
                leaks.add(f"{module} imports {imported}")
    assert leaks == set()


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_the_leaves_import_only_leaves(leaf: str) -> None:
    [path] = [p for p in MODULES if name_of(p) == f"parley.{leaf}"]
    others = {m for m in parley_imports(path) if m.removeprefix("parley.") not in LEAVES}
    assert others == set()


def test_no_module_imports_itself_back_through_others() -> None:
    graph = {name_of(path): parley_imports(path) - {name_of(path)} for path in MODULES}
    circles = []

    def visit(module: str, trail: list[str]) -> None:
        for imported in sorted(graph.get(module, ())):
            if imported in trail:
                circles.append(" -> ".join([*trail[trail.index(imported) :], imported]))
            elif imported not in done:
                visit(imported, [*trail, imported])
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert circles == []


def test_only_the_events_module_publishes_to_the_broker() -> None:
    publishers = set()
    for path in MODULES:
        module = name_of(path)
        if module == "parley.fanout.events" or module.startswith("parley.fanout.broker"):
            continue  # the publisher itself, and the backends' own plumbing
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("publish", "publish_many")
            ):
                publishers.add(f"{module}:{node.lineno}")
    assert publishers == set()


@pytest.mark.parametrize("part", ["usecases", "fanout", "store"])
def test_the_use_cases_and_below_know_no_transport(part: str) -> None:
    paths = [p for p in MODULES if part_of(name_of(p)) == part]
    assert paths, part
    leaks = {
        f"{name_of(path)} imports {imported}"
        for path in paths
        for imported in imports_of(path)
        if imported.startswith(TRANSPORT)
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


def test_the_top_level_holds_the_entry_modules_and_the_leaves_only() -> None:
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == LEAVES | {"app", "serve", "cli", "preflight"}


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
