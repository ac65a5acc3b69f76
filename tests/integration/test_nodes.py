"""Node liveness is a lease: a node whose heartbeats stop is reported inactive."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import now_ms
from agentfield_arq.kernel.errors import InvalidBaseUrl, InvalidRequest, NodeNotFound
from agentfield_arq.kernel.models import NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration


async def test_a_node_is_inactive_once_its_lease_lapses_and_active_after_a_heartbeat(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    node = NodeRegistration(id="n1", base_url="http://127.0.0.1:9", reasoners=[TargetSpec(id="r")])
    await registry.register(b'{"id": "n1"}', node)
    assert (await registry.get("n1"))["status"] == "active"
    lapsed = now_ms() - int(settings.node_lease_s * 1000) - 1000
    await redis_client.hset(registry.keys.node("n1"), "last_heartbeat_ms", str(lapsed))  # type: ignore[misc]  # redis-py's async stubs
    assert (await registry.get("n1"))["status"] == "inactive"
    await registry.heartbeat("n1", None)
    assert (await registry.get("n1"))["status"] == "active"


async def test_re_registering_replaces_the_node_s_targets(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    first = NodeRegistration(id="n1", base_url="http://a:1", reasoners=[TargetSpec(id="old")])
    second = NodeRegistration(id="n1", base_url="http://b:2", skills=[TargetSpec(id="new")])
    await registry.register(b'{"id": "n1"}', first)
    await registry.register(b'{"id": "n1"}', second)
    targets = await redis_client.hgetall(registry.keys.node_targets("n1"))  # type: ignore[misc]  # redis-py's async stubs
    assert targets == {b"new": b"skill"}
    assert await registry.base_url("n1") == "http://b:2"


async def test_the_list_forgets_nodes_whose_records_expired(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    await registry.register(b'{"id": "n1"}', NodeRegistration(id="n1", base_url="http://a:1"))
    await redis_client.delete(registry.keys.node("n1"))
    assert await registry.list() == []
    assert await redis_client.smembers(registry.keys.nodes) == set()  # type: ignore[misc]  # redis-py's async stubs


async def test_a_node_that_reports_itself_offline_is_inactive_despite_heartbeats(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    await registry.register(b'{"id": "n1"}', NodeRegistration(id="n1", base_url="http://a:1"))
    await registry.heartbeat("n1", "offline")
    assert (await registry.get("n1"))["status"] == "inactive"


async def test_a_node_id_that_could_name_another_key_is_not_found(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    await registry.register(
        b"{}", NodeRegistration(id="fin", base_url="http://a:1", reasoners=[TargetSpec(id="r")])
    )
    for crafted in ("fin:targets", "fin:x", "../fin"):
        with pytest.raises(NodeNotFound):
            await registry.heartbeat(crafted, "ready")
        with pytest.raises(NodeNotFound):
            await registry.get(crafted)
    assert await redis_client.hgetall(registry.keys.node_targets("fin")) == {b"r": b"reasoner"}  # type: ignore[misc]  # redis-py's async stubs


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://10.0.0.5/admin/x?y=", "query"),
        ("http://a:1/#frag", "fragment"),
        ("http://user:pw@a:1", "credentials"),
        ("ftp://a:1", "http"),
        ("http://a:notaport", "port"),
    ],
)
async def test_a_base_url_workers_could_be_steered_by_is_refused(
    redis_client: Redis, settings: Settings, base_url: str, problem: str
) -> None:
    registry = NodeRegistry(redis_client, settings)
    with pytest.raises(InvalidRequest, match=f"base_url.*{problem}"):
        await registry.register(b"{}", NodeRegistration(id="n", base_url=base_url))


async def test_a_malformed_node_id_is_an_invalid_request_naming_the_id(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    with pytest.raises(InvalidRequest, match=r"^id: "):
        await registry.register(b"{}", NodeRegistration(id="bad.id", base_url="http://a:1"))


async def test_a_node_registering_again_while_the_list_forgets_it_keeps_its_place(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    await registry.register(b'{"id": "n1"}', NodeRegistration(id="n1", base_url="http://a:1"))
    # The list saw n1's record gone, but n1 registered again before the list forgot it.
    forgotten = await registry._forget(
        keys=[registry.keys.nodes, registry.keys.node("n1")], args=["n1"]
    )
    assert forgotten == 0
    assert await redis_client.smembers(registry.keys.nodes) == {b"n1"}  # type: ignore[misc]  # redis-py's async stubs


async def test_a_base_url_the_workers_http_client_cannot_use_is_refused_at_registration(
    redis_client: Redis, settings: Settings
) -> None:
    # Passes the grammar's IDNA approximation; httpx's stricter IDNA 2008 decoder refuses it.
    registry = NodeRegistry(redis_client, settings)
    node = NodeRegistration(id="n", base_url="http://xn--upd:8001")  # U+10FC
    with pytest.raises(InvalidBaseUrl, match=r"^base_url: the workers' HTTP client cannot use it"):
        await registry.register(b"{}", node)
    assert await redis_client.exists(registry.keys.node("n")) == 0
