"""The connect policy with real processes: a worker started bare refuses an agent on loopback
(what the harness and the run command allow explicitly), without calling it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, deployed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bare(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, one worker with the secure default (no loopback agents) and the test agent."""
    logs: Path = tmp_path_factory.mktemp("logs")
    with deployed(e2e_redis, logs, agent_allow_loopback="false", sweep_interval_s=1) as system:
        yield system


def test_a_bare_worker_refuses_an_agent_on_loopback_before_connecting(bare: System) -> None:
    execution_id = bare.submit("e2e.echo", {"input": {"q": 1}})
    doc = bare.wait(execution_id)
    assert doc["status"] == "failed"
    assert doc["error"] == (
        "refused to connect to the agent at 127.0.0.1: 127.0.0.1 is a loopback address "
        "(allow with AGENTFIELD_ARQ_AGENT_ALLOW_LOOPBACK)"
    )
    assert bare.agent_calls(execution_id)["calls"] == 0


def test_registering_an_octal_base_url_is_400_invalid_base_url(bare: System) -> None:
    record = {"id": "octal", "base_url": "http://0177.0.0.1:8001"}
    answer = bare.http.post("/api/v1/nodes/register", json=record)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_base_url")
    assert answer.json()["error"].startswith("base_url: ")
