"""Our SDK's memory, notes, pauses and positional `app.call`, over MockTransport: the requests
they make and how they read the answers."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from agentfield_arq import Agent
from agentfield_arq.kernel import errors
from agentfield_arq.kernel.models import DecisionNotice
from agentfield_arq.sdk.context import ExecutionContext, entered
from agentfield_arq.sdk.parameters import bind

CONTEXT = ExecutionContext(execution_id="exec_1", run_id="run_1", session_id="s1")


def agent(handler: httpx.MockTransport) -> Agent:
    return Agent("keeper", server_url="http://cp", transport=handler)


def test_positional_arguments_take_the_parameter_names_in_order() -> None:
    assert bind("n.t", (1, 2), {"c": 3}, ["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(TypeError, match="takes 1 positional arguments but 2"):
        bind("n.t", (1, 2), {}, ["a"])
    with pytest.raises(TypeError, match="multiple values for argument 'a'"):
        bind("n.t", (1,), {"a": 2}, ["a"])


async def test_a_positional_call_to_another_node_reads_its_registered_parameters() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/api/v1/nodes/finance":
            schema: dict[str, object] = {"properties": {"quarter": {}, "region": {}}}
            reasoner = {"id": "deep", "input_schema": schema}
            return httpx.Response(
                200, json={"id": "finance", "base_url": "http://f", "reasoners": [reasoner]}
            )
        if request.url.path.startswith("/api/v1/execute/async/"):
            return httpx.Response(202, json={"execution_id": "exec_2"})
        return httpx.Response(
            200, json={"exec_2": {"execution_id": "exec_2", "status": "succeeded", "result": 1}}
        )

    app = agent(httpx.MockTransport(answer))
    assert await app.call("finance.deep", "Q3", region="eu") == 1
    submitted = next(r for r in sent if r.url.path.startswith("/api/v1/execute/async/"))
    assert json.loads(submitted.content)["input"] == {"quarter": "Q3", "region": "eu"}


async def test_get_returns_the_default_only_when_the_key_is_not_stored() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        key = json.loads(request.content)["key"]
        if key == "absent":
            return httpx.Response(404, json={"error": "no", "code": "memory_not_found"})
        return httpx.Response(404, json={"error": "no route", "code": "not_found"})

    app = agent(httpx.MockTransport(answer))
    assert await app.memory.get("absent", default="d") == "d"
    assert await app.memory.exists("absent") is False
    with pytest.raises(errors.NotFound):
        await app.memory.get("elsewhere")


async def test_memory_sends_the_executions_scopes_and_an_explicit_scope_id_wins() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    app = agent(httpx.MockTransport(answer))
    with entered(CONTEXT):
        await app.memory.set("k", 1)
        await app.memory.session("s2").set("k", 2)
    plain, scoped = sent
    assert plain.headers["x-workflow-id"] == "run_1"
    assert plain.headers["x-execution-id"] == "exec_1"
    assert plain.headers["x-agent-node-id"] == "keeper"
    assert "scope" not in json.loads(plain.content)
    assert scoped.headers.get_list("x-session-id") == ["s2"]
    assert json.loads(scoped.content) == {"key": "k", "data": 2, "scope": "session"}


async def test_a_note_is_posted_in_the_background_with_the_executions_id() -> None:
    posted = asyncio.Event()
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        posted.set()
        return httpx.Response(200, json={"success": True})

    app = agent(httpx.MockTransport(answer))
    with entered(CONTEXT):
        app.note("halfway", ["t"])
    await asyncio.wait_for(posted.wait(), 5)
    assert sent[0].url.path == "/api/v1/executions/note"
    assert sent[0].headers["x-execution-id"] == "exec_1"
    assert json.loads(sent[0].content)["tags"] == ["t"]


async def test_a_pause_asks_for_approval_and_returns_the_decision_the_agent_receives() -> None:
    asked = asyncio.Event()
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        asked.set()
        return httpx.Response(200, json={})

    app = agent(httpx.MockTransport(answer))
    app.base_url = "http://agent:1"
    with entered(CONTEXT):
        paused = asyncio.create_task(app.pause("req_1", expires_in_hours=1))
    await asyncio.wait_for(asked.wait(), 5)
    notice = DecisionNotice(execution_id="exec_1", approval_request_id="req_1", decision="approved")
    assert app.pauses.resolve(notice) is True
    result = await asyncio.wait_for(paused, 5)
    assert result.approved
    body = json.loads(sent[0].content)
    assert sent[0].url.path == "/api/v1/agents/keeper/executions/exec_1/request-approval"
    assert body["callback_url"] == "http://agent:1/webhooks/approval"


async def test_a_pause_past_its_timeout_is_expired() -> None:
    app = agent(httpx.MockTransport(lambda request: httpx.Response(200, json={})))
    app.base_url = "http://agent:1"
    with entered(CONTEXT):
        result = await app.pause("req_2", timeout=0.01)
    assert result.decision == "expired"
    notice = DecisionNotice(execution_id="exec_1", approval_request_id="req_2", decision="approved")
    assert app.pauses.resolve(notice) is False
