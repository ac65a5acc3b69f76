#!/usr/bin/env python3
"""Set up and drive agentfield-arq from a fresh clone: `python3 dev.py run` or `... test`.

Only the standard library is used here, because this file runs before anything is installed.
It creates `.venv/` beside itself, installs the project with its dev tools into it (again only
when `pyproject.toml` changed), then hands over to the tool inside the virtual environment.
`test` also keeps `.venv-agentfield/`, holding AgentField's own SDK for the compatibility tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"
# tests/e2e/test_agentfield_sdk.py runs an agent written with this release of AgentField's SDK.
# It lives in a virtual environment of its own: it pulls litellm, openai, botocore... (about
# 90 MB) that agentfield-arq must not depend on.
AGENTFIELD_PIN = "agentfield==0.1.144"
AGENTFIELD_VENV = ROOT / ".venv-agentfield"
AGENTFIELD_PYTHON = AGENTFIELD_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
AGENTFIELD_STAMP = AGENTFIELD_VENV / ".installed-pin"

USAGE = """usage: python3 dev.py COMMAND [ARGS...]

  run     install if needed, then start Redis, the API, two workers and the example agents
          (--shards N: N more Redis, the example nodes routed over them, workers for each)
  test    install if needed, then run ruff, mypy and the whole pytest suite
  bench   install if needed (with the bench extras), then run the benchmarks
  mutate  install if needed (with mutmut), then mutation-test the pure core (docs/mutation.md)
  shell   install if needed, then run ARGS inside the virtual environment
  screenshots  take docs/screenshots/*.png of the dashboard in Chromium (tests/e2e/test_ui.py)
"""


def _ensure_installed(extras: str = "server,dev") -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"dev.py: installing agentfield-arq[{extras}] into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    STAMP.write_text(wanted + "\n")


def _ensure_agentfield() -> str | None:
    """The interpreter that has AGENTFIELD_PIN, installed only when missing or when the pin
    changed; None, said on stderr, when it cannot be (the SDK tests then skip, or fail in CI)."""
    if AGENTFIELD_STAMP.exists() and AGENTFIELD_STAMP.read_text().strip() == AGENTFIELD_PIN:
        return str(AGENTFIELD_PYTHON)
    print(f"dev.py: installing {AGENTFIELD_PIN} into .venv-agentfield", flush=True)
    started = time.monotonic()
    try:
        if not AGENTFIELD_PYTHON.exists():
            venv.EnvBuilder(with_pip=True).create(AGENTFIELD_VENV)
        pip = [str(AGENTFIELD_PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, "-q", AGENTFIELD_PIN], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(
            f"dev.py: could not install {AGENTFIELD_PIN} ({exc}); its tests will skip "
            "(or fail, with CI set)",
            file=sys.stderr,
            flush=True,
        )
        return None
    AGENTFIELD_STAMP.write_text(AGENTFIELD_PIN + "\n")
    print(f"dev.py: installed {AGENTFIELD_PIN} in {time.monotonic() - started:.0f}s", flush=True)
    return str(AGENTFIELD_PYTHON)


def _ensure_chromium() -> None:
    """The browser of the dashboard tests: the system's Chromium. In CI as root, apt installs
    it when missing; elsewhere this says how (the tests skip without it, and fail in CI)."""
    if os.environ.get("CHROMIUM") or shutil.which("chromium"):
        return
    if os.environ.get("CI") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("dev.py: installing chromium with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["update", "-q"], ["install", "-y", "-q", "chromium"]):
            subprocess.run(["apt-get", *step], check=False, stdout=subprocess.DEVNULL, env=env)
        return
    print(
        "dev.py: no chromium on PATH (apt-get install chromium, or set CHROMIUM); the "
        "dashboard tests will skip (or fail, with CI set)",
        file=sys.stderr,
        flush=True,
    )


def _exec(argv: list[str], extra_env: dict[str, str] | None = None) -> int:
    env = {**os.environ, **(extra_env or {})}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    child = subprocess.Popen(argv, cwd=ROOT, env=env)
    # Ctrl-C reaches the child too (same process group): let it shut down in order, and wait.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _test(args: list[str]) -> int:
    _ensure_chromium()
    extra_env = {}
    if not os.environ.get("AGENTFIELD_SDK_PYTHON"):  # an interpreter of the caller's wins
        sdk_python = _ensure_agentfield()
        if sdk_python:
            extra_env["AGENTFIELD_SDK_PYTHON"] = sdk_python
    steps = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
        [str(BIN / "python"), "-m", "pytest", *args],
    ]
    for step in steps:
        print(
            "dev.py: $",
            " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)),
            flush=True,
        )
        code = _exec(step, extra_env)
        if code != 0:
            return code
    return 0


def _mutate(args: list[str]) -> int:
    """mutmut over the modules pyproject's [tool.mutmut] lists, at the lowest CPU priority (one
    child per core unless ARGS say otherwise), then its summary of the survivors."""
    run = ["nice", "-n", "19", str(BIN / "mutmut"), "run"]
    if "--max-children" not in args:
        run += ["--max-children", str(os.cpu_count() or 1)]
    code = _exec([*run, *args])
    if code != 0:
        return code
    return _exec([str(BIN / "mutmut"), "results"])


def main(argv: list[str]) -> int:
    """Dispatch one dev.py command; returns the process exit code."""
    if not argv or argv[0] not in {"run", "test", "bench", "mutate", "shell", "screenshots"}:
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        _ensure_installed("server,dev,bench")
        return _exec([str(BIN / "python"), "-m", "bench", *rest])
    if command == "mutate":
        _ensure_installed("server,dev,mutate")
        return _mutate(rest)
    _ensure_installed()
    if command == "run":
        return _exec([str(BIN / "agentfield-arq"), "run", *rest])
    if command == "test":
        return _test(rest)
    if command == "screenshots":  # the README's pictures of the dashboard, taken in Chromium
        _ensure_chromium()
        test = ["-m", "pytest", "-q", "tests/e2e/test_ui.py", "-k", "screenshots", *rest]
        return _exec([str(BIN / "python"), *test], {"UI_SCREENSHOTS": "docs/screenshots"})
    return _exec(rest)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
