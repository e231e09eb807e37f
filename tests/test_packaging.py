"""The wheel as a marketplace backend would install it: import name `parley`, nothing else at
the top level, and the migrations inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        # The locked hatchling, not whatever an isolated build would download today.
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [built] = out.glob("parley_chat-*.whl")
    return built


def test_the_wheel_holds_the_parley_package_and_its_migrations_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"parley", dist_info}
    migrations = sorted(path.name for path in (ROOT / "sql").glob("*.sql"))
    assert sorted(n.removeprefix("parley/sql/") for n in names if n.startswith("parley/sql/")) == (
        migrations
    )
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"parley = parley.cli:main" in entry_points


def test_the_wheel_serves_the_one_sdk_file_and_the_page(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    sdk = (ROOT / "clients" / "js" / "parley.js").read_bytes()
    assert archive.read("parley/static/parley.js") == sdk
    for page_file in ("index.html", "app.js", "inbox.js", "conversation.js", "state.js"):
        assert f"parley/static/{page_file}" in archive.namelist()


def test_installed_it_imports_as_parley_and_finds_its_migrations(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    probe = (
        "import importlib.util, sys; sys.path.insert(0, sys.argv[1]);"
        "import parley.store.migrate;"
        "print(parley.__file__);"
        "print(importlib.util.find_spec('server'));"
        "print(len(parley.store.migrate.discover()));"
        "import parley.web.page; print(parley.web.page.sdk_path())"
    )
    # -I: neither the checkout nor the development install is on the path.
    found = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    ).stdout.split()
    assert found[0].startswith(str(target))
    assert found[1] == "None", "no top-level server module"
    assert int(found[2]) == len(list((ROOT / "sql").glob("*.sql")))
    assert found[3] == str(target / "parley" / "static" / "parley.js")
