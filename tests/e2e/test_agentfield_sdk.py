"""Compatibility: an agent written with AgentField's own SDK (`agentfield` 0.1.144) registers,
heartbeats, is invoked, reports through callbacks, sends telemetry and logs, calls other nodes
with `app.call`, and says goodbye, against agentfield-arq, unmodified.

`agentfield` is not in the dev extras (it pulls litellm, openai, botocore, huggingface-hub:
about 90 MB of wheels), so the agent runs under the interpreter named by
$AGENTFIELD_SDK_PYTHON, which `python3 dev.py test` sets to `.venv-agentfield/` (provisioned
there with the pinned release). Without such an interpreter these tests skip, except with $CI
set, where they fail: CI must not pass without having run them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.ops.embedded import free_port
from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import children, execution_fields, node, start_node, stop_node
from tests.e2e.worklog import stopped_at, working


def _sdk_python() -> str | None:
    explicit = os.environ.get("AGENTFIELD_SDK_PYTHON")
    if explicit:
        return explicit
    return sys.executable if importlib.util.find_spec("agentfield") else None


SDK_PYTHON = _sdk_python()
AGENTFIELD_AGENT = str(Path(__file__).with_name("agentfield_agent.py"))

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def sdk_interpreter() -> str:
    """The interpreter with AgentField's SDK; without one, skip (fail in CI)."""
    if SDK_PYTHON is None:
        reason = "no interpreter with agentfield==0.1.144: run `python3 dev.py test`, or set "
        reason += "AGENTFIELD_SDK_PYTHON"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SDK_PYTHON


def start_classic(system: System, node_id: str = "classic") -> None:
    """Start the AgentField SDK agent under its own interpreter, as `node_id`."""
    assert SDK_PYTHON is not None
    start_node(
        system, node_id, SDK_PYTHON, AGENTFIELD_AGENT, NODE_ID=node_id, PORT=str(free_port())
    )


def stream(system: System, key: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(system.redis_url, decode_responses=True)
    try:
        return [fields for _, fields in client.xrange(key)]  # type: ignore[union-attr]  # redis-py's sync stubs
    finally:
        client.close()


@pytest.fixture(scope="module")
def compat(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, a worker, the three example nodes, the SDK test agent and the AgentField agent."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        agent=False,
        agent_timeout_s=5,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
    ) as deployment:
        for node_id in ("finance", "research", "analytics", "sdk"):
            start_node(deployment, node_id)
        start_classic(deployment)
        yield deployment


def test_it_registers_its_reasoners_and_skills_and_keeps_heartbeating(compat: System) -> None:
    record = node(compat, "classic")
    assert record["base_url"].startswith("http://localhost:")
    assert [r["id"] for r in record["reasoners"]] == [
        "analyze",
        "explode",
        "nothing",
        "quarterly",
        "catch",
        "work",
    ]
    assert record["skills"][0]["id"] == "format_report"
    assert record["reasoners"][0]["input_schema"]["required"] == ["ticker"]
    assert record["team_id"] == "default"
    first = record["last_heartbeat"]
    compat.until(lambda: node(compat, "classic")["last_heartbeat"] != first, "a heartbeat", 15)
    assert node(compat, "classic")["agent_status"] == "ready"


def test_its_reasoner_result_arrives_through_the_status_callback(compat: System) -> None:
    doc = compat.wait(compat.submit("classic.analyze", {"input": {"ticker": "ACME"}}))
    assert (doc["status"], doc["result"]) == (
        "succeeded",
        {"ticker": "ACME", "days": 5, "score": 0.5},
    )


def test_its_reasoner_that_raises_fails_with_the_error(compat: System) -> None:
    doc = compat.wait(compat.submit("classic.explode", {"input": {"reason": "no data"}}))
    assert (doc["status"], doc["error"]) == ("failed", "no data")


def test_its_reasoner_returning_none_succeeds_with_null(compat: System) -> None:
    doc = compat.wait(compat.submit("classic.nothing"))
    assert (doc["status"], doc["result"]) == ("succeeded", None)


def test_its_skill_answers_inline(compat: System) -> None:
    doc = compat.wait(compat.submit("classic.format_report", {"input": {"title": "Q3"}}))
    assert (doc["status"], doc["result"]) == ("succeeded", "# Q3")


def test_bad_input_fails_with_its_422(compat: System) -> None:
    doc = compat.wait(compat.submit("classic.analyze", {"input": {"days": 2}}))
    assert doc["status"] == "failed"
    assert "422" in doc["error"]
    assert "ticker" in doc["error"]


def test_its_app_call_fans_out_to_our_sdk_agents_as_children_of_its_execution(
    compat: System,
) -> None:
    report_id = compat.submit("classic.quarterly", {"input": {"quarter": "Q3"}})
    doc = compat.wait(report_id, timeout_s=30)
    assert doc["status"] == "succeeded", doc
    assert [s["section"] for s in doc["result"]["sections"]] == ["financial", "market", "customer"]
    calls = children(compat, report_id)
    assert len(calls) == 3
    assert {c["run_id"] for c in calls.values()} == {doc["run_id"]}


def test_its_app_call_of_a_failing_target_raises(compat: System) -> None:
    doc = compat.wait(compat.submit("classic.catch", {"input": {"target": "sdk.explode"}}))
    assert doc["result"]["raised"] == "ExecutionFailedError"
    assert "RuntimeError: model refused" in doc["result"]["message"]


def test_our_app_call_reaches_its_reasoners(compat: System) -> None:
    relay = {"input": {"target": "classic.analyze", "payload": {"ticker": "Z", "days": 1}}}
    doc = compat.wait(compat.submit("sdk.relay", relay))
    assert doc["result"] == {"ticker": "Z", "days": 1, "score": 0.5}


def test_its_telemetry_and_logs_are_recorded_and_never_finalise_anything(compat: System) -> None:
    execution_id = compat.submit("classic.analyze", {"input": {"ticker": "T"}})
    assert compat.wait(execution_id)["status"] == "succeeded"
    keys = Keys(compat.prefix)
    events = compat.until(
        lambda: (
            {
                e["status"]
                for e in stream(compat, keys.telemetry)
                if e["execution_id"] == execution_id
            }
            >= {"running", "succeeded"}
        ),
        "the SDK's start and end events",
    )
    assert events
    logs = compat.until(
        lambda: [
            e for e in stream(compat, keys.execution_logs) if e["execution_id"] == execution_id
        ],
        "the SDK's execution logs",
    )
    assert int(logs[0]["entries"]) >= 1


def test_it_says_goodbye_on_sigterm(compat: System) -> None:
    start_classic(compat, "classic-bye")
    stop_node(compat, "classic-bye").wait(30)
    record = node(compat, "classic-bye")
    assert (record["status"], record["agent_status"]) == ("inactive", "stopped")


def test_its_running_reasoner_is_cancelled_at_its_cancel_route(
    compat: System, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    execution_id = compat.submit("classic.work", {"input": {"log": str(log)}})
    working(log)
    asked = time.time()
    compat.http.post(f"/api/v1/executions/{execution_id}/cancel", json={"reason": "enough"})
    told = compat.until(
        lambda: execution_fields(compat, execution_id).get("agent_told"), "the agent to be told"
    )
    assert told == "cancelled"
    kept_working_s = stopped_at(log) - asked
    print(f"\nAgentField SDK agent cancelled: it kept working {kept_working_s * 1000:.0f} ms")
    doc = compat.wait(execution_id)
    assert (doc["status"], doc["error"]) == ("cancelled", "enough")
