"""Memory change events: the follower fans the stream out to subscribers in this process, the
history route reads it back, filters by scope and key pattern hold. The WebSocket and SSE
routes are exercised by real clients in tests/e2e (test_agentfield_sdk.py, test_memory_events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.changes import Changes, Filter, change
from agentfield_arq.core.connection import connect
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.memory import MemoryChangeEvent

pytestmark = pytest.mark.integration
RUN = {"X-Workflow-ID": "run_1", "X-Agent-Node-ID": "e2e"}


@pytest.fixture
async def changes(settings: Settings) -> AsyncIterator[Changes]:
    follower = Changes(connect(settings.redis_url), Keys("t"))
    task = asyncio.create_task(follower.run())
    yield follower
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await follower.redis.aclose()


async def test_a_subscriber_gets_each_change_made_after_it_subscribed_in_order(
    api: httpx.AsyncClient,
    changes: Changes,
) -> None:
    async with changes.subscribe() as queue:
        await api.post("/api/v1/memory/set", json={"key": "user.a", "data": {"v": 1}}, headers=RUN)
        await api.post("/api/v1/memory/delete", json={"key": "user.a"}, headers=RUN)
        first = await asyncio.wait_for(queue.get(), 5)
        second = await asyncio.wait_for(queue.get(), 5)
    assert first.event.key == "user.a"
    assert first.event.action == "set"
    assert first.event.scope == "workflow"
    assert first.node_id == "e2e"
    decoded = msgspec.json.decode(first.encoded, type=MemoryChangeEvent)
    assert decoded.data == {"v": 1}
    assert decoded.type == "memory_change"
    assert decoded.metadata.workflow_id == "run_1"
    assert second.event.action == "delete"
    assert msgspec.json.decode(second.encoded)["previous_data"] == {"v": 1}


def test_a_filter_matches_scope_scope_id_and_any_key_pattern() -> None:
    event = MemoryChangeEvent(
        id="1-0", timestamp="", scope="workflow", scope_id="run_1", key="user.a", action="set"
    )
    assert Filter(patterns=("order.*", "user.*")).matches(event)
    assert not Filter(patterns=("order.*",)).matches(event)
    assert not Filter(scope="global").matches(event)
    assert not Filter(scope_id="run_2").matches(event)
    assert Filter(scope="workflow", scope_id="run_1").matches(event)


async def test_the_history_answers_the_newest_matching_changes_oldest_first(
    api: httpx.AsyncClient,
) -> None:
    for i in range(5):
        await api.post("/api/v1/memory/set", json={"key": f"user.{i}", "data": i}, headers=RUN)
    await api.post("/api/v1/memory/set", json={"key": "other", "data": 9}, headers=RUN)
    answer = await api.get(
        "/api/v1/memory/events/history", params={"patterns": "user.*", "limit": "3"}
    )
    assert answer.status_code == 200
    assert [e["key"] for e in answer.json()] == ["user.2", "user.3", "user.4"]
    assert answer.json()[0]["data"] == 2
    later = await api.get("/api/v1/memory/events/history", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json() == []
    # As the Go server does, a `since` that is not a time is ignored.
    vague = await api.get("/api/v1/memory/events/history", params={"since": "yesterday"})
    assert len(vague.json()) == 6


async def test_the_sse_form_opens_with_a_comment_and_ends_at_max_s(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.get("/api/v1/memory/events/sse", params={"max_s": "0.1"})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.content.startswith(b": subscribed\n\n")


async def test_a_full_subscriber_loses_changes_but_the_others_do_not(
    changes: Changes,
    redis_client: Redis,
) -> None:
    async with changes.subscribe() as slow, changes.subscribe() as fast:
        for _ in range(slow.maxsize):
            slow.put_nowait(change("0-1", {b"key": b"filler"}))
        await redis_client.xadd(Keys("t").memory_events, {"key": "k", "action": "set"})
        got = await asyncio.wait_for(fast.get(), 5)
    assert got.event.key == "k"
    assert {slow.get_nowait().event.key for _ in range(slow.maxsize)} == {"filler"}
