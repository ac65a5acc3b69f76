"""The operator's commands over two Redis (core/routing.py): the session's as home, with node
`near`, and one started for this module as shard `1`, with node `far` routed to it; each
command reads the Redis an execution's id names, or every Redis, as the API does."""

from __future__ import annotations

import asyncio
import contextlib
import json

import msgspec
import pytest
import redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.execution import submit
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec
from agentfield_arq.ops.cli import main
from agentfield_arq.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def routed(
    settings: Settings, shard_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The commands' environment: home, shard 1 (flushed: ours) taking node `far`."""
    with contextlib.closing(redis.Redis.from_url(shard_server.url)) as client:
        client.flushall()
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("AGENTFIELD_ARQ_KEY_PREFIX", settings.key_prefix)
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_SHARDS", f"1={shard_server.url}")
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_ROUTES", "far=1")
    return msgspec.structs.replace(
        settings, redis_shards=f"1={shard_server.url}", redis_routes="far=1"
    )


async def _seed(settings: Settings, code: str, node_id: str, count: int) -> list[str]:
    """Node `node_id` on Redis `code` and `count` queued executions of it there."""
    client = connect(settings.routes.urls[code])
    try:
        node = NodeRegistration(
            id=node_id, base_url="http://127.0.0.1:9", reasoners=[TargetSpec(id="report")]
        )
        await NodeRegistry(client, settings).register(msgspec.json.encode(node), node)
        store = ExecutionStore(client, settings, code if code != "0" else "")
        request = ExecuteRequest(input={})
        return [(await submit(store, f"{node_id}.report", request, {})).execution_id
                for _ in range(count)]  # fmt: skip
    finally:
        await client.aclose()


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return code, out


async def test_the_list_merges_every_redis_newest_first_and_pages_on(
    routed: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [*await _seed(routed, "0", "near", 2), *await _seed(routed, "1", "far", 2)]
    _, out = await _run(capsys, "executions", "list", "--json", "--limit", "3")
    newest = sorted(ids, reverse=True)
    assert [e["execution_id"] for e in json.loads(out)] == newest[:3]
    _, out = await _run(capsys, "executions", "list", "--target", "far.report")
    assert {line.split()[0] for line in out.strip().splitlines()[1:]} == set(ids[2:])


async def test_show_cancel_and_retry_reach_an_execution_on_its_redis(
    routed: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (far,) = await _seed(routed, "1", "far", 1)
    _, out = await _run(capsys, "executions", "show", far, "--json")
    assert json.loads(out)["status"] == "queued"
    _, out = await _run(capsys, "executions", "cancel", far, "--json")
    assert json.loads(out)["status"] == "cancelled"
    _, out = await _run(capsys, "executions", "retry", far, "--json")
    retry = json.loads(out)["execution_id"]
    assert retry.endswith("1")  # where `far` is: shard 1
    _, out = await _run(capsys, "executions", "show", retry, "--json")
    assert json.loads(out)["retry_of"] == far


async def test_queue_has_a_column_per_redis_and_nodes_lists_both(
    routed: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await _seed(routed, "0", "near", 1)
    await _seed(routed, "1", "far", 2)
    _, out = await _run(capsys, "queue", "--json")
    state = json.loads(out)
    assert (state["0"]["queued_executions"], state["1"]["queued_executions"]) == (1, 2)
    _, out = await _run(capsys, "queue")
    header, *rows = out.strip().splitlines()
    assert header.split() == ["QUEUE", "REDIS", "0", "REDIS", "1"]
    assert ["queued_executions", "1", "2"] in [row.split() for row in rows]
    _, out = await _run(capsys, "nodes", "--json")
    assert [n["id"] for n in json.loads(out)] == ["far", "near"]
    _, out = await _run(capsys, "webhooks", "dead", "--json")
    assert json.loads(out)["deliveries"] == []
