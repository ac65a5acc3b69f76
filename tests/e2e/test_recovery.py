"""A worker killed with SIGKILL mid-execution loses nothing: another worker picks the execution
up after arq's in-progress lock lapses, and the agent never runs it twice at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agentfield_arq.core.settings import from_env
from tests.e2e.conftest import System, deployed

pytestmark = pytest.mark.e2e

AGENT_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def crashing(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        workers=0,
        agent_timeout_s=AGENT_TIMEOUT_S,
        worker_poll_delay_s=0.02,
    ) as deployment:
        yield deployment


def test_a_sigkilled_worker_s_execution_is_finished_by_another_within_the_bound(
    crashing: System,
) -> None:
    crashing.start_worker("doomed")
    execution_id = crashing.submit("e2e.block")
    crashing.agent_calls(execution_id, in_flight=1)  # the doomed worker's call is open
    crashing.kill("doomed")
    killed_at = time.monotonic()
    crashing.start_worker("rescuer")
    bound = from_env({}, agent_timeout_s=AGENT_TIMEOUT_S, worker_poll_delay_s=0.02)
    doc = crashing.wait(execution_id, timeout_s=bound.recovery_bound_s + 10)
    recovered_in = time.monotonic() - killed_at
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"calls": 2}
    assert recovered_in <= bound.recovery_bound_s + 5
    calls = crashing.agent_calls(execution_id)
    assert calls["calls"] == 2
    assert calls["peak"] == 1
