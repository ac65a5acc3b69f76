"""Who may touch memory, notes and approvals once keys are on (api/owners.py): an agent key
reaches the scopes of executions its nodes run, and the global scope; only the running node
asks for approval; a caller that did not submit an execution cannot decide it."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.credentials import Role
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from tests.integration.served import served
from tests.integration.test_api import _submit
from tests.keys import issue

pytestmark = pytest.mark.integration


async def _running(api: httpx.AsyncClient) -> tuple[str, str]:
    execution_id = await _submit(api)
    doc = await api.post(f"/api/v1/executions/{execution_id}/status", json={"status": "running"})
    return execution_id, doc.json()["run_id"]


async def test_an_agent_key_reaches_its_executions_scopes_and_global_only(
    api: httpx.AsyncClient,
    settings: Settings,
) -> None:
    execution_id, run_id = await _running(api)
    mine = {"X-Execution-ID": execution_id, "X-Workflow-ID": run_id}
    key = await issue(settings, Role.AGENT, ["e2e"])
    async with served(settings, key) as agent:
        own = await agent.post("/api/v1/memory/set", json={"key": "k", "data": 1}, headers=mine)
        assert own.status_code == 200, own.text
        other_run = {**mine, "X-Workflow-ID": "run_someone_else"}
        stolen = await agent.post("/api/v1/memory/get", json={"key": "k"}, headers=other_run)
        assert stolen.status_code == 403
        shared = await agent.post("/api/v1/memory/set", json={"key": "g", "data": 1})
        assert shared.status_code == 200


async def test_to_another_nodes_key_the_execution_is_unknown_for_notes_and_pauses(
    api: httpx.AsyncClient,
    settings: Settings,
) -> None:
    execution_id, run_id = await _running(api)
    key = await issue(settings, Role.AGENT, ["other"])
    async with served(settings, key) as agent:
        note = await agent.post(
            "/api/v1/executions/note",
            json={"message": "m"},
            headers={"X-Execution-ID": execution_id},
        )
        assert note.status_code == 404  # another key's execution is unknown to it
        ask = await agent.post(
            f"/api/v1/agents/e2e/executions/{execution_id}/request-approval",
            json={"approval_request_id": "r"},
        )
        assert ask.status_code == 404
        scoped = await agent.post(
            "/api/v1/memory/get",
            json={"key": "k"},
            headers={"X-Execution-ID": execution_id, "X-Workflow-ID": run_id},
        )
        assert scoped.status_code == 403


async def test_a_caller_that_did_not_submit_cannot_decide_and_reaches_no_memory(
    api: httpx.AsyncClient,
    settings: Settings,
) -> None:
    execution_id, _ = await _running(api)
    asked = await api.post(
        f"/api/v1/agents/e2e/executions/{execution_id}/request-approval",
        json={"approval_request_id": "r"},
    )
    assert asked.status_code == 200, asked.text
    key = await issue(settings, Role.CALLER)
    async with served(settings, key) as caller:
        assert (await caller.post(f"/api/v1/executions/{execution_id}/approve")).status_code == 404
        assert (await caller.post("/api/v1/memory/get", json={"key": "g"})).status_code == 403
    assert (await api.post(f"/api/v1/executions/{execution_id}/approve")).status_code == 200


async def test_a_change_is_recorded_as_made_by_a_node_only_if_the_key_owns_it(
    api: httpx.AsyncClient,
    settings: Settings,
    redis_client: Redis,
) -> None:
    key = await issue(settings, Role.AGENT, ["e2e"])
    async with served(settings, key) as agent:
        for claimed in ("e2e", "other"):
            answer = await agent.post(
                "/api/v1/memory/set",
                json={"key": claimed, "data": 1},
                headers={"X-Agent-Node-ID": claimed},
            )
            assert answer.status_code == 200
    entries = await redis_client.xrange(Keys("t").memory_events)
    assert [f[b"node_id"] for _, f in entries] == [b"e2e", b""]
