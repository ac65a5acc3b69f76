"""The agent's HTTP surface, driven in-process: 202 and callback, inline answers, bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentfield_arq import Agent
from agentfield_arq.sdk.context import ExecutionContext
from tests.unit.control_plane import FakeControlPlane

ASKED = {"X-Execution-ID": "exec_1", "X-Run-ID": "run_1"}


@pytest.fixture
def cp() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def agent(cp: FakeControlPlane) -> Agent:
    app = Agent("finance", "1.0.0", "http://cp", transport=cp.transport)
    app.reporter.base_s = 0.001

    @app.reasoner()
    async def deep_analysis(quarter: str, depth: int = 1) -> dict[str, Any]:
        """Analyse a quarter."""
        return {"quarter": quarter, "depth": depth}

    @app.reasoner
    async def explode() -> None:
        raise ValueError("model refused")

    @app.reasoner(name="opaque")
    async def opaque_result() -> object:
        return object()

    @app.skill(tags=["fmt"], path="/format")
    def format_title(title: str) -> str:
        return f"# {title}"

    return app


@pytest.fixture
async def http(agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=agent.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        yield client


def reports(cp: FakeControlPlane) -> list[dict[str, Any]]:
    return cp.bodies("POST", "/api/v1/executions/exec_1/status")


async def test_a_reasoner_asked_with_an_execution_id_answers_202_then_reports_success(
    http: httpx.AsyncClient, cp: FakeControlPlane
) -> None:
    answer = await http.post("/reasoners/deep_analysis", json={"quarter": "Q3"}, headers=ASKED)
    assert answer.status_code == 202
    assert answer.json() == {"status": "processing", "execution_id": "exec_1"}
    await cp.until(lambda: len(reports(cp)) == 1)
    (report,) = reports(cp)
    assert report["status"] == "succeeded"
    assert report["result"] == {"quarter": "Q3", "depth": 1}
    assert report["execution_id"] == "exec_1"
    assert report["reasoner"] == "deep_analysis"
    assert isinstance(report["duration_ms"], int)
    assert report["completed_at"].endswith("Z")


async def test_the_report_echoes_the_callback_token_and_carries_the_agents_key(
    cp: FakeControlPlane,
) -> None:
    app = Agent("finance", "1.0.0", "http://cp", api_key="afk_agent", transport=cp.transport)

    @app.reasoner
    async def deep_analysis() -> int:
        return 1

    asked = {**ASKED, "X-Callback-Token": "tok_1"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as h:
        assert (await h.post("/reasoners/deep_analysis", json={}, headers=asked)).status_code == 202
        await cp.until(lambda: len(reports(cp)) == 1)
    (sent,) = cp.sent("POST", "/api/v1/executions/exec_1/status")
    assert sent.headers["x-callback-token"] == "tok_1"
    assert sent.headers["authorization"] == "Bearer afk_agent"


async def test_a_child_call_does_not_pass_the_callback_token_on() -> None:
    context = ExecutionContext.from_headers({"x-execution-id": "e", "x-callback-token": "t"})
    assert context.callback_token == "t"
    assert "t" not in context.child_headers().values()


async def test_the_agent_reads_its_key_from_agentfield_api_key(
    cp: FakeControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFIELD_API_KEY", "afk_from_env")
    app = Agent("finance", "1.0.0", "http://cp", transport=cp.transport)
    assert app.api_key == "afk_from_env"


async def test_a_reasoner_asked_without_an_execution_id_answers_inline(
    http: httpx.AsyncClient, cp: FakeControlPlane
) -> None:
    answer = await http.post("/reasoners/deep_analysis", json={"quarter": "Q1", "depth": 2})
    assert (answer.status_code, answer.json()) == (200, {"quarter": "Q1", "depth": 2})
    assert cp.requests == []


async def test_a_skill_answers_inline_even_when_asked_with_an_execution_id(
    http: httpx.AsyncClient, cp: FakeControlPlane
) -> None:
    answer = await http.post("/skills/format_title", json={"title": "Q3"}, headers=ASKED)
    assert (answer.status_code, answer.json()) == (200, "# Q3")
    assert cp.requests == []


async def test_a_custom_path_serves_the_target_as_well(http: httpx.AsyncClient) -> None:
    answer = await http.post("/format", json={"title": "T"})
    assert answer.json() == "# T"


async def test_bad_input_is_a_422_naming_the_field_and_nothing_runs(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent
) -> None:
    answer = await http.post("/reasoners/deep_analysis", json={"depth": 2}, headers=ASKED)
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_input"
    assert answer.json()["field"] == "quarter"
    assert agent.reporter.in_flight == 0
    assert cp.requests == []


async def test_an_input_over_the_cap_is_a_413_and_nothing_runs(
    cp: FakeControlPlane, agent: Agent, http: httpx.AsyncClient
) -> None:
    agent.max_input_bytes = 64
    answer = await http.post("/reasoners/deep_analysis", json={"quarter": "Q" * 64}, headers=ASKED)
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    assert agent.reporter.in_flight == 0
    assert cp.requests == []


async def test_a_reasoner_that_raises_reports_failed_with_the_error(
    http: httpx.AsyncClient, cp: FakeControlPlane
) -> None:
    await http.post("/reasoners/explode", json={}, headers=ASKED)
    await cp.until(lambda: len(reports(cp)) == 1)
    (report,) = reports(cp)
    assert report["status"] == "failed"
    assert report["error"] == "ValueError: model refused"
    assert "result" not in report


async def test_a_reasoner_that_raises_inline_answers_500_with_the_error(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post("/reasoners/explode", json={})
    assert answer.status_code == 500
    assert answer.json() == {"error": "ValueError: model refused", "code": "reasoner_failed"}


async def test_a_result_that_is_not_json_reports_failed(
    http: httpx.AsyncClient, cp: FakeControlPlane
) -> None:
    await http.post("/reasoners/opaque", json={}, headers=ASKED)
    await cp.until(lambda: len(reports(cp)) == 1)
    assert "not JSON-serialisable" in reports(cp)[0]["error"]


@pytest.mark.parametrize("value", [None, [1, "two", None], "plain words", 42, {"result": 1}])
async def test_a_reasoner_may_return_any_json_value(cp: FakeControlPlane, value: Any) -> None:
    app = Agent("n", server_url="http://cp", transport=cp.transport)

    @app.reasoner
    async def give() -> Any:
        return value

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as h:
        assert (await h.post("/reasoners/give", headers=ASKED)).status_code == 202
        await cp.until(lambda: len(reports(cp)) == 1)
        assert reports(cp)[0]["status"] == "succeeded"
        assert reports(cp)[0]["result"] == value
        assert (await h.post("/reasoners/give")).json() == value


async def test_the_callback_is_retried_on_5xx_until_it_is_taken(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent
) -> None:
    path = "/api/v1/executions/exec_1/status"
    cp.script("POST", path, httpx.Response(503), httpx.ConnectError("down"), httpx.Response(502))
    await http.post("/reasoners/deep_analysis", json={"quarter": "Q2"}, headers=ASKED)
    await cp.until(lambda: agent.reporter.in_flight == 0)
    assert len(cp.sent("POST", path)) == 4


async def test_the_callback_is_not_retried_when_the_control_plane_refuses_it(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent
) -> None:
    path = "/api/v1/executions/exec_1/status"
    cp.script("POST", path, httpx.Response(409, json={"code": "invalid_transition"}))
    await http.post("/reasoners/deep_analysis", json={"quarter": "Q2"}, headers=ASKED)
    await cp.until(lambda: agent.reporter.in_flight == 0)
    assert len(cp.sent("POST", path)) == 1


async def test_a_result_over_the_agents_cap_is_reported_as_a_failure(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent
) -> None:
    agent.reporter.max_result_bytes = 16
    await http.post("/reasoners/deep_analysis", json={"quarter": "Q2"}, headers=ASKED)
    await cp.until(lambda: agent.reporter.in_flight == 0)
    (report,) = reports(cp)
    assert report["status"] == "failed"
    assert report["error"].startswith("result too large: 26 bytes")
    assert "result" not in report


async def test_a_result_the_control_plane_refuses_with_413_is_reported_as_a_failure(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent
) -> None:
    path = "/api/v1/executions/exec_1/status"
    cp.script("POST", path, httpx.Response(413, json={"code": "payload_too_large"}))
    await http.post("/reasoners/deep_analysis", json={"quarter": "Q2"}, headers=ASKED)
    await cp.until(lambda: agent.reporter.in_flight == 0)
    sent, refused = reports(cp)
    assert (sent["status"], sent["result"]) == ("succeeded", {"quarter": "Q2", "depth": 1})
    assert refused["status"] == "failed"
    assert refused["error"] == (
        "result too large: the control plane refused its 26 bytes (HTTP 413)"
    )
    assert "result" not in refused


async def test_asking_again_for_an_execution_running_here_answers_202_and_starts_nothing(
    cp: FakeControlPlane,
) -> None:
    app = Agent("n", server_url="http://cp", transport=cp.transport)
    release = asyncio.Event()
    runs: list[str] = []

    @app.reasoner
    async def slow() -> str:
        runs.append("run")
        await release.wait()
        return "done"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as h:
        first = await h.post("/reasoners/slow", headers=ASKED)
        again = await h.post("/reasoners/slow", headers=ASKED)
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json() == {"status": "processing", "execution_id": "exec_1"}
        assert app.reporter.in_flight == 1
        release.set()
        await cp.until(lambda: app.reporter.in_flight == 0)
    assert runs == ["run"]
    assert [r["result"] for r in reports(cp)] == ["done"]


async def test_an_unknown_target_is_a_404(http: httpx.AsyncClient) -> None:
    answer = await http.post("/reasoners/format_title", json={"title": "x"})
    assert answer.status_code == 404
    assert answer.json()["code"] == "target_not_found"


async def test_health_status_and_info_describe_the_node(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json()["node_id"] == "finance"
    assert (await http.get("/status")).json()["status"] == "running"
    info = (await http.get("/info")).json()
    assert [r["id"] for r in info["reasoners"]] == ["deep_analysis", "explode", "opaque"]
    assert [s["id"] for s in info["skills"]] == ["format_title"]


def test_the_registration_is_agentfields_node_record(agent: Agent) -> None:
    agent.base_url = "http://127.0.0.1:9000"
    record = agent.registration()
    assert (record["id"], record["version"], record["base_url"]) == (
        "finance",
        "1.0.0",
        "http://127.0.0.1:9000",
    )
    (first, *_) = record["reasoners"]
    assert first["input_schema"]["required"] == ["quarter"]
    assert first["description"] == "Analyse a quarter."
    assert record["skills"][0]["tags"] == ["fmt"]
    json.dumps(record)


def test_a_name_may_be_declared_only_once(agent: Agent) -> None:
    with pytest.raises(ValueError, match="already has"):

        @agent.skill(name="explode")
        def other() -> None:
            return None


def test_names_the_control_plane_cannot_route_are_refused() -> None:
    with pytest.raises(ValueError, match="node_id"):
        Agent("bad.node")
    app = Agent("node")
    with pytest.raises(ValueError, match="not usable"):

        @app.reasoner(name="has space")
        async def spaced() -> None:
            return None


def test_a_declared_function_stays_callable_as_it_was(agent: Agent) -> None:
    assert agent.targets["format_title"].func("x") == "# x"


async def test_a_reasoner_reports_its_progress_before_its_end(cp: FakeControlPlane) -> None:
    app = Agent("finance", "1.0.0", "http://cp", transport=cp.transport)

    @app.reasoner()
    async def steps() -> str:
        assert await app.progress(50, message="half way")
        return "done"

    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        answer = await client.post("/reasoners/steps", json={}, headers=ASKED)
        assert answer.status_code == 202
        await cp.until(lambda: len(reports(cp)) == 2)
    progress, end = reports(cp)
    assert progress == {"status": "running", "progress": 50, "message": "half way"}
    assert end["status"] == "succeeded"


async def test_progress_outside_a_reasoner_reports_nothing(
    agent: Agent, cp: FakeControlPlane
) -> None:
    assert await agent.progress(10) is False
    assert cp.requests == []
