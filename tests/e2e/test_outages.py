"""Agent faults with real processes: an agent down for longer than the old retry budget is
waited out (nothing sent spends no attempt), an agent that answered 202 and died has the
execution dispatched again when it registers as a new instance, and an inline call that timed
out is not sent again (it may still be running)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from agentfield_arq.core.keys import Keys
from tests.e2e.conftest import System, deployed

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3
QUEUED = 20


@pytest.fixture(scope="module")
def outages(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        agent_max_attempts=MAX_ATTEMPTS,
        agent_retry_base_s=0.05,
        agent_wait_max_s=0.5,
        worker_poll_delay_s=0.02,
        sweep_interval_s=1,
    ) as system:
        yield system


def _fields(system: System, execution_id: str) -> dict[str, str]:
    with redis.Redis.from_url(system.redis_url, decode_responses=True) as client:
        fields: dict[str, str] = client.hgetall(Keys(system.prefix).execution(execution_id))
        return fields


def test_an_agent_down_past_the_old_retry_budget_is_waited_out(outages: System) -> None:
    outages.kill("agent")
    ids = [outages.submit("e2e.echo", {"input": {"n": n}}) for n in range(QUEUED)]

    def waited_past_the_budget() -> bool:
        return all(int(_fields(outages, i).get("uncharged", 0)) > MAX_ATTEMPTS for i in ids)

    outages.until(waited_past_the_budget, "every execution to wait past the old budget")
    back_at = time.monotonic()
    outages.start_agent()
    docs = [outages.wait(i) for i in ids]
    flowed_in = time.monotonic() - back_at
    succeeded = sum(d["status"] == "succeeded" for d in docs)
    print(f"\nagent down: {succeeded} of {QUEUED} succeeded, {flowed_in:.2f}s after its return")
    assert succeeded == QUEUED
    assert all(outages.agent_calls(i)["calls"] == 1 for i in ids)


def test_an_agent_that_died_after_202_has_the_execution_sent_to_its_next_instance(
    outages: System,
) -> None:
    outages.kill("agent")
    outages.start_agent("e2e", "--lose-callbacks", instance_id="first")
    execution_id = outages.submit("e2e.accept", {"input": {"quarter": "Q3"}})
    outages.until(
        lambda: _fields(outages, execution_id).get("phase") == "awaiting_callback",
        "the first instance's 202",
    )
    outages.kill("agent")
    outages.start_agent("e2e", instance_id="second")
    doc = outages.wait(execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", {"quarter": "Q3"})
    assert outages.agent_calls(execution_id)["calls"] == 1  # the second instance's one call


def test_an_inline_call_that_timed_out_is_not_sent_again(outages: System) -> None:
    execution_id = outages.submit("e2e.slow", {"input": {"s": 3}, "timeout_s": 0.5})
    doc = outages.wait(execution_id)
    assert doc["status"] == "failed"
    assert "timed out after 0.5s" in doc["error"]
    assert outages.agent_calls(execution_id, in_flight=0)["calls"] == 1
