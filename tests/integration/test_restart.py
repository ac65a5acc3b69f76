"""Restart (AgentField's `restart_execution`): an ended execution submitted again as a new one,
in a new run, with the source's target, input, session, actor and webhook."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.credentials import Role
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from tests.integration.served import served
from tests.keys import issue

pytestmark = pytest.mark.integration
HOOK = {"url": "https://hooks.example.com/in", "secret": "s3cret"}


async def _ended(api: httpx.AsyncClient) -> dict[str, str]:
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo",
        json={"input": {"text": "hi"}, "webhook": HOOK},
        headers={"X-Session-ID": "sess", "X-Actor-ID": "alice"},
    )
    submitted: dict[str, str] = answer.json()
    assert (await api.post(f"/api/v1/executions/{submitted['execution_id']}/cancel")).is_success
    return submitted


async def test_a_restart_is_a_new_execution_in_a_new_run_with_the_sources_request(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    source = await _ended(api)
    answer = await api.post(
        f"/api/v1/executions/{source['execution_id']}/restart",
        json={"scope": "workflow", "reuse": "succeeded-before", "reason": "flaky"},
    )
    assert answer.status_code == 202, answer.text
    new = answer.json()
    assert new["restarted_from"] == source["execution_id"]
    assert new["execution_id"] != source["execution_id"]
    assert new["run_id"] != source["run_id"]
    assert new["status"] == "queued"
    assert new["webhook_registered"] is True
    fields = await redis_client.hgetall(Keys("t").execution(new["execution_id"]))  # type: ignore[misc]  # redis-py's async stubs
    assert fields[b"input"] == b'{"text":"hi"}'
    assert fields[b"session_id"] == b"sess"
    assert fields[b"actor_id"] == b"alice"
    secret = await redis_client.get(Keys("t").webhook_secret(new["execution_id"]))
    assert secret == b"s3cret"


async def test_a_restart_may_replace_the_input(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    source = await _ended(api)
    answer = await api.post(
        f"/api/v1/executions/{source['execution_id']}/restart", json={"input": {"text": "again"}}
    )
    key = Keys("t").execution(answer.json()["execution_id"])
    assert await redis_client.hget(key, "input") == b'{"text":"again"}'  # type: ignore[misc]  # redis-py's async stubs


async def test_a_caller_restarts_only_what_it_submitted_and_owns_the_restart(
    api: httpx.AsyncClient,
    settings: Settings,
    redis_client: Redis,
) -> None:
    source = await _ended(api)
    key = await issue(settings, Role.CALLER)
    async with served(settings, key) as caller:
        foreign = await caller.post(f"/api/v1/executions/{source['execution_id']}/restart")
        assert foreign.status_code == 404
        mine = (await caller.post("/api/v1/execute/async/e2e.echo", json={"input": {}})).json()
        await api.post(f"/api/v1/executions/{mine['execution_id']}/cancel")
        again = await caller.post(f"/api/v1/executions/{mine['execution_id']}/restart")
        assert again.status_code == 202, again.text
        owner = await redis_client.hget(Keys("t").execution(again.json()["execution_id"]), "owner")  # type: ignore[misc]  # redis-py's async stubs
        mine_owner = await redis_client.hget(Keys("t").execution(mine["execution_id"]), "owner")  # type: ignore[misc]  # redis-py's async stubs
        assert owner == mine_owner


async def test_an_unended_execution_is_409_and_an_unknown_one_404(
    api: httpx.AsyncClient,
) -> None:
    queued = (await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})).json()
    answer = await api.post(f"/api/v1/executions/{queued['execution_id']}/restart")
    assert answer.status_code == 409
    assert answer.json()["code"] == "execution_not_terminal"
    unknown = await api.post("/api/v1/executions/exec_unknown/restart", json={})
    assert unknown.status_code == 404
