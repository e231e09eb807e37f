#!/usr/bin/env python3
"""Bootstrap for the README's two commands: make or reuse `.venv`, install, then run.

    python3 dev.py run     # start Parley in demo mode: open http://localhost:8000
    python3 dev.py test    # ruff, mypy, tsc and the tests (embedded services unless told otherwise)
    python3 dev.py demo    # any other word runs that `parley` command: demo, token 701, migrate

Only the standard library is used here, so it works on a machine with nothing but Python 3.11+.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".parley-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


SDK = ROOT / "clients" / "python"
JS_SDK = ROOT / "clients" / "js"


def _install_fingerprint(extras: str) -> str:
    # Reinstall only when the declared dependencies, or what is asked for, change.
    digest = hashlib.sha256(extras.encode())
    for project in (ROOT / "pyproject.toml", SDK / "pyproject.toml"):
        digest.update(project.read_bytes())
    return digest.hexdigest()


def ensure_venv(extras: str) -> None:
    """`run` needs only what running needs (plus the embedded Postgres); `test` the rest."""
    if sys.version_info < (3, 11):
        sys.exit(f"Parley needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    python = BIN / "python"
    if not python.exists():
        print(f"dev.py: creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    installed = STAMP.read_text().splitlines() if STAMP.exists() else []
    fingerprint = _install_fingerprint(extras)
    # An environment set up for the tests also runs the server: never downgrade it.
    if fingerprint in installed or (
        extras == "embedded" and _install_fingerprint("dev") in installed
    ):
        return
    print(f"dev.py: installing parley-chat[{extras}] and parley-client", flush=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run(
        [*pip, "install", "--editable", f"{ROOT}[{extras}]", "--editable", str(SDK)], check=True
    )
    STAMP.write_text(fingerprint + "\n")


def check_js_sdk() -> int:
    """tsc --noEmit over the SDK's hand-kept types (TypeScript from npm, into node_modules)."""
    npm = shutil.which("npm")
    if npm is None:
        print("dev.py: npm not found; install Node.js 20 to check clients/js", file=sys.stderr)
        return 1
    if not (JS_SDK / "node_modules" / ".bin" / "tsc").exists():
        code = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_SDK).returncode
        if code != 0:
            return code
    return subprocess.run([npm, "run", "--silent", "check"], cwd=JS_SDK).returncode


def run_checks_and_tests(pytest_args: list[str]) -> int:
    sources = [
        name for name in ("server", "clients", "tests", "bench", "dev.py") if (ROOT / name).exists()
    ]
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
        if tool == "mypy":
            print("dev.py: tsc --noEmit (clients/js)", flush=True)
            code = check_js_sdk()
            if code != 0:
                return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv("dev" if command == "test" else "embedded")
    os.chdir(ROOT)
    if command == "test":
        return run_checks_and_tests(rest)
    if command == "run":
        # The README's quick start: a seeded marketplace and the chat page at /.
        os.environ.setdefault("PARLEY_DEMO", "1")
    parley = str(BIN / "parley")
    os.execv(parley, [parley, "serve" if command == "run" else command, *rest])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
