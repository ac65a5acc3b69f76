"""`app.call`: lineage headers, one shared poll for concurrent calls, results and errors as is."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from agentfield_arq import Agent
from agentfield_arq.kernel import errors
from agentfield_arq.sdk.context import ExecutionContext, entered
from tests.unit.control_plane import FakeControlPlane

SUBMIT = "/api/v1/execute/async/"


@pytest.fixture
def cp() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def app(cp: FakeControlPlane) -> Agent:
    return Agent("orchestrator", server_url="http://cp", transport=cp.transport)


async def test_a_call_inside_an_execution_joins_its_run_as_its_child(
    app: Agent, cp: FakeControlPlane
) -> None:
    context = ExecutionContext(execution_id="exec_parent", run_id="run_7", session_id="s1")
    with entered(context):
        assert await app.call("finance.deep_analysis", quarter="Q3") == {"quarter": "Q3"}
    (request,) = cp.sent("POST", SUBMIT)
    assert request.headers["x-run-id"] == "run_7"
    assert request.headers["x-parent-execution-id"] == "exec_parent"
    assert request.headers["x-session-id"] == "s1"


async def test_a_call_outside_any_execution_starts_a_new_run(
    app: Agent, cp: FakeControlPlane
) -> None:
    await app.call("finance.deep_analysis", quarter="Q3")
    (request,) = cp.sent("POST", SUBMIT)
    assert "x-run-id" not in request.headers
    assert "x-parent-execution-id" not in request.headers


async def test_a_reasoner_s_calls_carry_the_ids_the_control_plane_sent_it(
    app: Agent, cp: FakeControlPlane
) -> None:
    @app.reasoner
    async def relay() -> Any:
        return await app.call("finance.deep_analysis", quarter="Q1")

    asked = {"X-Execution-ID": "exec_r", "X-Run-ID": "run_r"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as h:
        await h.post("/reasoners/relay", headers=asked)
        await cp.until(lambda: bool(cp.sent("POST", "/api/v1/executions/exec_r/status")))
    (submitted,) = cp.sent("POST", SUBMIT)
    assert submitted.headers["x-parent-execution-id"] == "exec_r"
    assert submitted.headers["x-run-id"] == "run_r"
    (report,) = cp.bodies("POST", "/api/v1/executions/exec_r/status")
    assert report["result"] == {"quarter": "Q1"}


async def test_three_concurrent_calls_are_waited_on_by_one_shared_batch_poll(
    app: Agent, cp: FakeControlPlane
) -> None:
    results = await asyncio.gather(
        app.call("finance.deep_analysis", quarter="Q3"),
        app.call("research.market_trends", quarter="Q3"),
        app.call("analytics.churn_report", quarter="Q3"),
    )
    assert list(results) == [{"quarter": "Q3"}] * 3
    (poll,) = cp.bodies("POST", "/api/v1/executions/batch-status")
    assert sorted(poll["execution_ids"]) == ["exec_1", "exec_2", "exec_3"]
    assert cp.sent("GET", "/api/v1/executions/") == []


async def test_a_result_with_a_result_key_comes_back_unchanged(
    app: Agent, cp: FakeControlPlane
) -> None:
    cp.outcomes["n.wrapped"] = lambda given: {
        "status": "succeeded",
        "result": {"result": 42, "x": 1},
    }
    assert await app.call("n.wrapped") == {"result": 42, "x": 1}


async def test_a_none_result_returns_none(app: Agent, cp: FakeControlPlane) -> None:
    cp.outcomes["n.none"] = lambda given: {"status": "succeeded", "result": None}
    assert await app.call("n.none") is None


async def test_a_failed_target_raises_execution_failed_with_its_id_and_error(
    app: Agent, cp: FakeControlPlane
) -> None:
    cp.outcomes["n.bad"] = lambda given: {"status": "failed", "error": "ValueError: no data"}
    with pytest.raises(errors.ExecutionFailed) as caught:
        await app.call("n.bad")
    assert caught.value.execution_id == "exec_1"
    assert caught.value.error == "ValueError: no data"
    assert "exec_1" in str(caught.value)


async def test_a_submission_that_may_have_arrived_is_never_sent_again(
    app: Agent, cp: FakeControlPlane
) -> None:
    cp.script("POST", f"{SUBMIT}n.x", httpx.ReadTimeout("no answer"))
    with pytest.raises(errors.ControlPlaneUnreachable):
        await app.call("n.x")
    assert len(cp.sent("POST", SUBMIT)) == 1


async def test_a_submission_refused_by_the_api_is_not_sent_again(
    app: Agent, cp: FakeControlPlane
) -> None:
    cp.script("POST", f"{SUBMIT}n.x", httpx.Response(503, json={"code": "unavailable"}))
    with pytest.raises(errors.Unavailable):
        await app.call("n.x")
    assert len(cp.sent("POST", SUBMIT)) == 1


async def test_a_submission_is_sent_again_while_connections_are_refused(
    app: Agent, cp: FakeControlPlane
) -> None:
    cp.script("POST", f"{SUBMIT}n.x", httpx.ConnectError("refused"), httpx.ConnectError("again"))
    assert await app.call("n.x", k=1) == {"k": 1}
    assert len(cp.sent("POST", SUBMIT)) == 3
