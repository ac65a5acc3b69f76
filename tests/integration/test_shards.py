"""The API over two Redis servers (core/routing.py), in this process: the session's as home
and one started for this module as shard `1`, with node `far` routed to it. What the e2e test
(tests/e2e/test_shards.py) cannot count: the round trips per Redis, and ids made before the
routes were set."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import Role
from agentfield_arq.core.execution import submit
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.routing import stamp
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import new_id
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration
from agentfield_arq.ops.embedded import EmbeddedRedis
from tests.e2e.agent_app import registration
from tests.integration.served import served
from tests.keys import issue


@pytest.fixture(scope="module")
def shard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("shard-1")), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def routed(settings: Settings, shard_server: EmbeddedRedis) -> Settings:
    """The test settings with shard 1 (flushed: ours) taking node `far`."""
    with contextlib.closing(redis.Redis.from_url(shard_server.url)) as client:
        client.flushall()
    return msgspec.structs.replace(
        settings, redis_shards=f"1={shard_server.url}", redis_routes="far=1"
    )


@pytest.fixture
async def api(routed: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the routed app, with nodes `near` (home) and `far` (shard 1) registered."""
    async with served(routed) as client:
        for node_id in ("near", "far"):
            record = registration(node_id, "http://127.0.0.1:9")
            answer = await client.post("/api/v1/nodes/register", json=record)
            assert answer.status_code == 201, answer.text
        yield client


def _calls(url: str, command: str) -> int:
    with contextlib.closing(redis.Redis.from_url(url)) as client:
        stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]  # redis-py's sync stubs
    return stats.get(f"cmdstat_{command}", {}).get("calls", 0)


def _reset_stats(*urls: str) -> None:
    for url in urls:
        with contextlib.closing(redis.Redis.from_url(url)) as client:
            client.config_resetstat()


async def test_batch_status_asks_each_redis_once(routed: Settings, api: httpx.AsyncClient) -> None:
    ids = []
    for target in ("near.echo", "far.echo") * 3:
        answer = await api.post(f"/api/v1/execute/async/{target}", json={"input": {}})
        ids.append(answer.json()["execution_id"])
    asked = {"execution_ids": ids}
    _reset_stats(routed.redis_url, routed.routes.urls["1"])
    answer = await api.post("/api/v1/executions/batch-status", json=asked)
    assert {doc["status"] for doc in answer.json().values()} == {"queued"}
    for url in (routed.redis_url, routed.routes.urls["1"]):
        assert (_calls(url, "mget"), _calls(url, "evalsha")) == (1, 0)


async def test_an_agent_key_owns_its_routed_node_where_the_keys_are(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    mine = await issue(routed, Role.AGENT, ["far"])
    theirs = await issue(routed, Role.AGENT, ["elsewhere"])
    beat = "/api/v1/nodes/far/heartbeat"
    assert (await api.post(beat, headers={"Authorization": f"Bearer {mine}"})).status_code == 200
    refused = await api.post(beat, headers={"Authorization": f"Bearer {theirs}"})
    assert refused.status_code == 403, refused.text
    again = await api.post(
        "/api/v1/nodes/register",
        json=registration("far", "http://127.0.0.1:8"),
        headers={"Authorization": f"Bearer {theirs}"},
    )
    assert again.status_code == 403, again.text


async def test_an_id_made_before_the_routes_is_found_home_by_every_read(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    # Made on home by an API without routes: its last character is random, here shard 1's.
    home = connect(routed.redis_url, routed)
    try:
        made = stamp(new_id("exec"), "1")
        store = ExecutionStore(home, routed)
        await submit(store, "near.echo", ExecuteRequest(input={}), {}, made)
    finally:
        await home.aclose()
    assert (await api.get(f"/api/v1/executions/{made}")).json()["status"] == "queued"
    batch = await api.post("/api/v1/executions/batch-status", json={"execution_ids": [made]})
    assert batch.json()[made]["status"] == "queued"
    cancelled = await api.post(f"/api/v1/executions/{made}/cancel")
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    with contextlib.closing(redis.Redis.from_url(routed.routes.urls["1"])) as shard:
        assert not shard.exists(Keys(routed.key_prefix).execution(made))


async def test_readiness_names_each_redis_without_a_live_worker(api: httpx.AsyncClient) -> None:
    answer = await api.get("/ready")
    assert answer.status_code == 503
    assert answer.json()["code"] == "not_ready"
    assert "on Redis 0, 1" in answer.json()["error"]


async def test_a_retry_and_a_restart_go_to_the_redis_that_takes_the_node_now(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    # `far` was home before the routes sent it to shard 1: one of its executions is there.
    home = connect(routed.redis_url, routed)
    try:
        record = msgspec.json.encode(registration("far", "http://127.0.0.1:9"))
        await NodeRegistry(home, routed).register(
            record, msgspec.json.decode(record, type=NodeRegistration)
        )
        old = await submit(ExecutionStore(home, routed), "far.echo", ExecuteRequest(input={}), {})
    finally:
        await home.aclose()
    assert (await api.post(f"/api/v1/executions/{old.execution_id}/cancel")).status_code == 200
    keys = Keys(routed.key_prefix)
    with contextlib.closing(redis.Redis.from_url(routed.routes.urls["1"])) as shard:
        for route in ("retry", "restart"):
            answer = await api.post(f"/api/v1/executions/{old.execution_id}/{route}")
            assert answer.status_code == 202, answer.text
            new = answer.json()["execution_id"]
            assert new.endswith("1")
            assert shard.exists(keys.execution(new))
