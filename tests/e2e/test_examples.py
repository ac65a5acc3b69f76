"""The SDK end to end: the seed's example agents and an SDK test agent as real processes.

The orchestrator fans out to three nodes at once and combines their sections; reasoners that
raise or return None; `app.call` errors; a call retried while its agent is stopped, until it
is back; SIGTERM draining a running reasoner; and the clients against the real API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentfield_arq import AsyncClient, Client
from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import children, execution_fields, node, start_node, stop_node
from tests.keys import ADMIN_KEY

pytestmark = pytest.mark.e2e

EXAMPLE_NODES = ("finance", "research", "analytics", "orchestrator")
REPORT = "orchestrator.generate_quarterly_report"


@pytest.fixture(scope="module")
def sdk_system(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, two workers, the four example agents and the SDK test agent; retries patient
    enough to outlast an agent that is stopped, then started again."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        workers=2,
        agent=False,
        agent_timeout_s=5,
        agent_max_attempts=15,
        agent_retry_base_s=0.2,
        agent_retry_max_s=1.0,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
    ) as deployment:
        for node_id in (*EXAMPLE_NODES, "sdk"):
            start_node(deployment, node_id)
        yield deployment


def test_the_quarterly_report_runs_three_calls_at_once_and_combines_their_sections(
    sdk_system: System,
) -> None:
    report_id = sdk_system.submit(REPORT, {"input": {"quarter": "Q3"}})
    doc = sdk_system.wait(report_id)
    assert doc["status"] == "succeeded", doc
    sections = doc["result"]["sections"]
    assert [s["section"] for s in sections] == ["financial", "market", "customer"]
    assert {s["quarter"] for s in sections} == {"Q3"}
    assert sections[0]["revenue_growth_pct"] == 12.4
    calls = children(sdk_system, report_id)
    assert sorted(calls) == [
        "analytics.churn_report",
        "finance.deep_analysis",
        "research.market_trends",
    ]
    assert {c["run_id"] for c in calls.values()} == {doc["run_id"]}
    docs = [sdk_system.wait(c["execution_id"]) for c in calls.values()]
    # Concurrent, not one after the other: every call started before any of them ended.
    assert max(d["started_at"] for d in docs) < min(d["completed_at"] for d in docs)


def test_a_reasoner_that_raises_fails_its_execution_with_the_error(sdk_system: System) -> None:
    doc = sdk_system.wait(sdk_system.submit("sdk.explode"))
    assert doc["status"] == "failed"
    assert doc["error"] == "RuntimeError: model refused"


def test_a_reasoner_returning_none_succeeds_with_a_null_result(sdk_system: System) -> None:
    doc = sdk_system.wait(sdk_system.submit("sdk.nothing"))
    assert doc["status"] == "succeeded"
    assert "result" in doc
    assert doc["result"] is None


def test_a_reasoner_may_return_a_list(sdk_system: System) -> None:
    doc = sdk_system.wait(sdk_system.submit("sdk.listing"))
    assert doc["result"] == [1, "two", None]


def test_a_skill_answers_inline(sdk_system: System) -> None:
    doc = sdk_system.wait(sdk_system.submit("sdk.add", {"input": {"a": 2, "b": 3}}))
    assert (doc["status"], doc["result"]) == ("succeeded", 5)


def test_app_call_raises_execution_failed_carrying_the_child_id_and_error(
    sdk_system: System,
) -> None:
    parent = sdk_system.submit("sdk.catch", {"input": {"target": "sdk.explode"}})
    caught = sdk_system.wait(parent)["result"]
    assert caught["raised"] == "ExecutionFailed"
    assert caught["error"] == "RuntimeError: model refused"
    child = sdk_system.wait(caught["execution_id"])
    assert child["status"] == "failed"
    assert execution_fields(sdk_system, caught["execution_id"])["parent_execution_id"] == parent


def test_app_call_of_a_reasoner_returning_none_returns_none(sdk_system: System) -> None:
    relay = {"input": {"target": "sdk.nothing", "payload": {}}}
    doc = sdk_system.wait(sdk_system.submit("sdk.relay", relay))
    assert (doc["status"], doc["result"]) == ("succeeded", None)


def test_input_that_does_not_fit_the_signature_fails_naming_the_field(sdk_system: System) -> None:
    doc = sdk_system.wait(sdk_system.submit("finance.deep_analysis", {"input": {"q": "Q3"}}))
    assert doc["status"] == "failed"
    assert "422" in doc["error"]
    assert "quarter" in doc["error"]


def test_a_call_to_a_stopped_agent_is_retried_until_it_is_back_and_the_report_completes(
    sdk_system: System,
) -> None:
    stop_node(sdk_system, "finance").wait(30)
    report_id = sdk_system.submit(REPORT, {"input": {"quarter": "Q2"}})
    # The run has reached the stopped agent: its call is queued for retry meanwhile.
    sdk_system.until(
        lambda: int(
            children(sdk_system, report_id).get("finance.deep_analysis", {}).get("attempt", 0)
        ),
        "the finance call to be tried while finance is down",
    )
    start_node(sdk_system, "finance")
    doc = sdk_system.wait(report_id, timeout_s=60)
    assert doc["status"] == "succeeded", doc
    assert doc["result"]["sections"][0]["quarter"] == "Q2"
    finance_call = children(sdk_system, report_id)["finance.deep_analysis"]
    assert int(finance_call["attempt"]) >= 2


def test_sigterm_lets_a_running_reasoner_finish_then_the_node_says_goodbye(
    sdk_system: System,
) -> None:
    execution_id = sdk_system.submit("sdk.slow", {"input": {"s": 1.0}})
    sdk_system.until(
        lambda: execution_fields(sdk_system, execution_id).get("phase") == "awaiting_callback",
        "the agent to accept the execution",
    )
    process = stop_node(sdk_system, "sdk")
    doc = sdk_system.wait(execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", {"slept": 1.0})
    process.wait(30)
    assert node(sdk_system, "sdk")["status"] == "inactive"
    start_node(sdk_system, "sdk")


async def test_the_async_client_waits_on_several_executions_with_shared_polls(
    sdk_system: System,
) -> None:
    async with AsyncClient(sdk_system.api_url, api_key=ADMIN_KEY) as client:
        report = await client.execute_async(REPORT, {"quarter": "Q4"})
        failing = await client.execute_async("sdk.explode", {"reason": "no data"})
        found = await client.wait([report.execution_id, failing.execution_id], timeout_s=30)
    assert found[report.execution_id].status == "succeeded"
    assert len(found[report.execution_id].outcome()["sections"]) == 3
    assert (found[failing.execution_id].status, found[failing.execution_id].error) == (
        "failed",
        "RuntimeError: no data",
    )


def test_the_sync_client_runs_an_execution_through_the_sync_route(sdk_system: System) -> None:
    with Client(sdk_system.api_url, api_key=ADMIN_KEY) as client:
        execution = client.execute("research.market_trends", {"quarter": "Q1"})
    assert execution.status == "succeeded"
    assert execution.outcome()["quarter"] == "Q1"
