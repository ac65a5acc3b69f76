"""AGENTFIELD_ARQ_REDIS_WAIT_REPLICAS: an acknowledgement waits for replicas (WAIT). The session's
Redis has none, so a wait for one runs out, and the API says so instead of acknowledging."""

from __future__ import annotations

import msgspec
import pytest

from agentfield_arq.core.settings import Settings
from tests.e2e.agent_app import registration
from tests.integration.served import served

pytestmark = pytest.mark.integration

WAIT_MS = 50


async def test_an_execute_no_replica_confirmed_is_503_not_replicated(settings: Settings) -> None:
    durable = msgspec.structs.replace(
        settings, redis_wait_replicas=1, redis_wait_timeout_ms=WAIT_MS
    )
    async with served(durable) as api:
        answer = await api.post(
            "/api/v1/nodes/register", json=registration("e2e", "http://127.0.0.1:9")
        )
        assert answer.status_code == 201, answer.text
        answer = await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})
    assert answer.status_code == 503
    assert answer.json()["code"] == "not_replicated"
    assert "0 of 1 replicas" in answer.json()["error"]


async def test_waiting_for_no_replica_acknowledges_at_once(settings: Settings) -> None:
    async with served(msgspec.structs.replace(settings, redis_wait_replicas=0)) as api:
        await api.post("/api/v1/nodes/register", json=registration("e2e", "http://127.0.0.1:9"))
        answer = await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})
    assert answer.status_code == 202, answer.text
