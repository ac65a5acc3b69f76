"""What an agent author's process loads: the SDK without the control plane. Probed in a fresh
interpreter, since the test process itself has long imported every room of the package."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_importing_the_sdk_loads_neither_the_control_plane_nor_redis() -> None:
    probe = (
        "import sys; from agentfield_arq import Agent, AsyncClient, Client, verify; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'redis', 'arq'} "
        "or m.startswith('agentfield_arq.core')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert loaded.strip() == "[]"
