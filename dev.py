#!/usr/bin/env python3
"""Set up and drive agentfield-arq from a fresh clone: `python3 dev.py run` or `... test`.

Only the standard library is used here, because this file runs before anything is installed.
It creates `.venv/` beside itself, installs the project with its dev tools into it (again only
when `pyproject.toml` changed), then hands over to the tool inside the virtual environment.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"

USAGE = """usage: python3 dev.py COMMAND [ARGS...]

  run     install if needed, then start Redis, the API, two workers and the example agents
  test    install if needed, then run ruff, mypy and the whole pytest suite
  bench   install if needed (with the bench extras), then run the benchmarks
  shell   install if needed, then run ARGS inside the virtual environment
"""


def _ensure_installed(extras: str = "dev") -> None:
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


def _exec(argv: list[str]) -> int:
    env = dict(os.environ)
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
        code = _exec(step)
        if code != 0:
            return code
    return 0


def main(argv: list[str]) -> int:
    """Dispatch one dev.py command; returns the process exit code."""
    if not argv or argv[0] not in {"run", "test", "bench", "shell"}:
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        _ensure_installed("dev,bench")
        return _exec([str(BIN / "python"), "-m", "bench", *rest])
    _ensure_installed()
    if command == "run":
        return _exec([str(BIN / "agentfield-arq"), "run", *rest])
    if command == "test":
        return _test(rest)
    return _exec(rest)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
