#!/usr/bin/env python3
"""Bootstrap for the README's two commands: make or reuse `.venv`, install, then run.

    python3 dev.py run     # start Parley (embedded Postgres unless DATABASE_URL is set)
    python3 dev.py test    # ruff, mypy and the test suite (embedded services unless told otherwise)
    python3 dev.py demo    # any other word runs that `parley` command: demo, token 701, migrate

Only the standard library is used here, so it works on a machine with nothing but Python 3.11+.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".parley-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _install_fingerprint() -> str:
    # Reinstall only when the declared dependencies change.
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Parley needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    python = BIN / "python"
    if not python.exists():
        print(f"dev.py: creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("dev.py: installing parley-chat[dev] (first run or changed pyproject.toml)", flush=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--editable", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(fingerprint)


def run_checks_and_tests(pytest_args: list[str]) -> int:
    sources = [name for name in ("server", "tests", "bench", "dev.py") if (ROOT / name).exists()]
    steps = [
        ["ruff", "check", *sources],
        ["ruff", "format", "--check", *sources],
        ["mypy"],
        ["pytest", *pytest_args],
    ]
    for tool, *args in steps:
        print(f"dev.py: {tool} {' '.join(args)}", flush=True)
        code = subprocess.run([str(BIN / tool), *args], cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if command == "test":
        return run_checks_and_tests(rest)
    parley = str(BIN / "parley")
    os.execv(parley, [parley, "serve" if command == "run" else command, *rest])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
