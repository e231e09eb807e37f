"""dev.py, the bootstrap behind the README's commands, and the lock it installs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def locked(name: str) -> dict[str, str]:
    """name -> version of every pin in requirements/<name>.txt."""
    pins = {}
    for line in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            requirement = Requirement(line.rstrip(" \\"))
            [specifier] = requirement.specifier
            pins[requirement.name.lower()] = specifier.version
    return pins


def test_the_test_lock_pins_every_declared_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    declared += project["optional-dependencies"]["embedded"]
    declared += project["optional-dependencies"]["bench"]
    pins = locked("test")
    for text in declared:
        requirement = Requirement(text)
        if requirement.name == "parley-chat":
            continue  # the extras of itself
        version = pins.get(requirement.name.lower())
        assert version is not None, f"{requirement.name} is not in requirements/test.txt"
        assert requirement.specifier.contains(version), f"{requirement.name} {version}"


def test_the_run_lock_takes_the_test_lock_s_versions() -> None:
    run, test = locked("run"), locked("test")
    assert run, "requirements/run.txt pins nothing"
    assert {name: test.get(name) for name in run} == run


def test_dev_py_test_names_what_is_missing_in_one_line(tmp_path: Path) -> None:
    # A PATH with Python and bash but no npm.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PATH"} | {"PATH": str(bin_dir)}
    done = subprocess.run(
        [str(bin_dir / "python3"), str(ROOT / "dev.py"), "test"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "npm" in line
    assert "Node.js" in line
    assert "Traceback" not in done.stderr
