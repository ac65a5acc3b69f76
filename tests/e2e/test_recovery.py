"""Worker faults with real processes: a SIGKILLed worker's executions run again within seconds
(its lease lapses; the agent timeout does not matter), and a SIGTERMed worker drains: it takes
no new work, lets its calls finish, and hands back only what is left, without spending
attempts. The agent never runs an execution twice at once, and twice only where a kill or a
hand-back explains it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.codec import now_ms
from tests.e2e.conftest import System, deployed

pytestmark = pytest.mark.e2e

# Far longer than any wait here: recovery must not depend on it.
AGENT_TIMEOUT_S = 120
SETTINGS: dict[str, Any] = {
    "agent_timeout_s": AGENT_TIMEOUT_S,
    "worker_poll_delay_s": 0.02,
    "sweep_interval_s": 1,
}
KILLS = 5
IN_FLIGHT = 32


@pytest.fixture(scope="module")
def crashing(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with deployed(e2e_redis, tmp_path_factory.mktemp("logs"), workers=0, **SETTINGS) as system:
        yield system


def _live_workers(system: System) -> int:
    with redis.Redis.from_url(system.redis_url) as client:
        return int(client.zcount(Keys(system.prefix).workers, f"({now_ms()}", "+inf"))


def _field(system: System, execution_id: str, name: str) -> str | None:
    with redis.Redis.from_url(system.redis_url, decode_responses=True) as client:
        value: str | None = client.hget(Keys(system.prefix).execution(execution_id), name)
        return value


def test_a_sigkilled_worker_s_execution_runs_again_within_seconds(crashing: System) -> None:
    bound = from_env({}, **SETTINGS).lease_recovery_bound_s
    crashing.start_worker("worker-0")
    recoveries: list[float] = []
    for n in range(KILLS):
        execution_id = crashing.submit("e2e.block")
        crashing.agent_calls(execution_id, in_flight=1)  # the doomed worker's call is open
        crashing.start_worker(f"worker-{n + 1}")
        crashing.until(lambda: _live_workers(crashing) == 2, "the rescuer's lease")
        crashing.kill(f"worker-{n}")
        killed_at = time.monotonic()
        doc = crashing.wait(execution_id, timeout_s=bound + 20)
        recoveries.append(time.monotonic() - killed_at)
        assert (doc["status"], doc["result"]) == ("succeeded", {"calls": 2})
        calls = crashing.agent_calls(execution_id)
        assert (calls["calls"], calls["peak"]) == (2, 1)
        assert _field(crashing, execution_id, "uncharged") == "1"  # the kill spent no attempt
    last = crashing.processes.pop(f"worker-{KILLS}")
    last.terminate()
    assert last.wait(30) == 0
    median = statistics.median(recoveries)
    print(f"\nrecovery after SIGKILL: median {median:.2f}s of {recoveries} (bound {bound:.2f}s)")
    assert median <= bound + 5  # generous: a loaded machine


def test_a_sigtermed_worker_finishes_its_calls_before_it_exits(crashing: System) -> None:
    before = _live_workers(crashing)
    crashing.start_worker("drainer")
    crashing.until(lambda: _live_workers(crashing) == before + 1, "the drainer's lease")
    ids = [crashing.submit("e2e.slow", {"input": {"s": 8}}) for _ in range(IN_FLIGHT)]
    for execution_id in ids:
        crashing.agent_calls(execution_id, calls=1)
    in_flight = sum(crashing.agent_calls(i)["in_flight"] for i in ids)
    drainer = crashing.processes.pop("drainer")
    drainer.terminate()
    assert drainer.wait(30) == 0
    docs = [crashing.wait(execution_id) for execution_id in ids]
    assert {d["status"] for d in docs} == {"succeeded"}
    repeated = sum(crashing.agent_calls(i)["calls"] - 1 for i in ids)
    print(f"\nSIGTERM with {in_flight} calls in flight: {repeated} calls repeated")
    assert repeated == 0


def test_a_drain_that_runs_out_hands_the_execution_back_without_spending_an_attempt(
    crashing: System,
) -> None:
    before = _live_workers(crashing)
    crashing.start_worker("impatient", worker_drain_s="0.5")
    crashing.until(lambda: _live_workers(crashing) == before + 1, "the worker's lease")
    execution_id = crashing.submit("e2e.block")
    crashing.agent_calls(execution_id, in_flight=1)
    crashing.start_worker("successor")
    impatient = crashing.processes.pop("impatient")
    impatient.terminate()
    assert impatient.wait(30) == 0
    doc = crashing.wait(execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", {"calls": 2})
    assert crashing.agent_calls(execution_id)["peak"] == 1
    assert _field(crashing, execution_id, "uncharged") == "1"
    assert _field(crashing, execution_id, "requeued") == "worker stopped"
