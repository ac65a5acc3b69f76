"""Webhook deliveries against a real Redis: queued by the terminal transition itself, attempted,
retried, dead, redriven, and shown on reads; receivers are httpx.MockTransport handlers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import DELIVER_WEBHOOK, arq_deserialize, delivery_job_id
from agentfield_arq.core.connection import connect
from agentfield_arq.core.delivery import Deliverer
from agentfield_arq.core.execution import cancel, submit
from agentfield_arq.core.keys import WEBHOOK_EVENTS_MAX
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Attempt, Outbox, Outcome
from agentfield_arq.core.runner import Runner
from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.errors import (
    ExecutionNotFound,
    ExecutionNotTerminal,
    WebhookBusy,
    WebhookNotFound,
)
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec
from agentfield_arq.kernel.signing import verify
from agentfield_arq.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration

HOOK = {
    "url": "https://hooks.example.com/in?token=t0p",
    "secret": "s3cret",
    "headers": {"X-Team": "a"},
}
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two retries, 1 s then 2 s, without jitter."""
    return msgspec.structs.replace(settings, webhook_retry_schedule_s="1,2", webhook_jitter=0.0)


@pytest.fixture
async def store(redis_client: Redis, settings: Settings) -> ExecutionStore:
    node = NodeRegistration(id="finance", base_url="http://127.0.0.1:9",
                            reasoners=[TargetSpec(id="deep_analysis")])  # fmt: skip
    await NodeRegistry(redis_client, settings).register(b'{"id": "finance"}', node)
    return ExecutionStore(redis_client, settings)


@pytest.fixture
def outbox(redis_client: Redis, settings: Settings) -> Outbox:
    return Outbox(redis_client, settings)


class Receiver:
    """Answers with the queued statuses in turn (then 200), keeping every request."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)


def _deliverer(outbox: Outbox, settings: Settings, receiver: Handler) -> Deliverer:
    return Deliverer(outbox, httpx.AsyncClient(transport=httpx.MockTransport(receiver)), settings)


async def _terminal(store: ExecutionStore, webhook: Any = HOOK, status: str = "succeeded") -> str:
    request = ExecuteRequest(input={"quarter": "Q3"}, webhook=webhook)
    execution_id = (await submit(store, "finance.deep_analysis", request, {})).execution_id
    now = now_ms()
    result = b'{"x":1}' if status == "succeeded" else None
    error = None if status == "succeeded" else "agent said no"
    await store.finish(execution_id, status, rfc3339(now), now, result=result, error=error)
    return execution_id


async def _view(store: ExecutionStore, execution_id: str) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(await store.get_view(execution_id) or b"")
    return view


async def test_the_terminal_transition_queues_the_delivery_job_in_the_same_step(
    store: ExecutionStore, redis_client: Redis
) -> None:
    execution_id = await _terminal(store)
    job_id = delivery_job_id(execution_id)
    assert await redis_client.zscore(store.keys.queue, job_id) is not None
    job = arq_deserialize(await redis_client.get(store.keys.arq_job(job_id)))
    assert (job["f"], job["a"]) == (DELIVER_WEBHOOK, [execution_id])
    view = await _view(store, execution_id)
    assert view["webhook_status"] == "pending"
    assert view["webhook_events"] == []
    assert view["result"] == {"x": 1}


async def test_nothing_is_queued_before_the_end_nor_without_a_webhook(
    store: ExecutionStore, redis_client: Redis
) -> None:
    request = ExecuteRequest(input={}, webhook=HOOK)
    running = (await submit(store, "finance.deep_analysis", request, {})).execution_id
    await store.claim(running, rfc3339(now_ms()), now_ms())
    await store.progress(running, "running", rfc3339(now_ms()), now_ms(), {"pct": 50})
    plain = await _terminal(store, webhook=None)
    for execution_id in (running, plain):
        assert await redis_client.zscore(store.keys.queue, delivery_job_id(execution_id)) is None
        assert "webhook_status" not in await _view(store, execution_id)


async def test_a_cancel_and_a_deadline_timeout_announce_execution_failed(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    request = ExecuteRequest(input={}, webhook=HOOK)
    cancelled = (await submit(store, "finance.deep_analysis", request, {})).execution_id
    await cancel(store, cancelled)
    overdue = (await submit(store, "finance.deep_analysis", request, {})).execution_id
    await store.redis.zadd(store.keys.deadlines, {overdue: 0})
    await store.redis.hset(store.keys.execution(overdue), "deadline_ms", "0")  # type: ignore[misc]  # redis-py's async stubs
    http = httpx.AsyncClient(transport=httpx.MockTransport(Receiver()))
    runner = Runner(store, NodeRegistry(store.redis, settings), http, settings)
    assert await runner.sweep() == 1
    receiver = Receiver()
    for execution_id in (cancelled, overdue):
        await _deliverer(outbox, settings, receiver).deliver(execution_id)
    bodies = [json.loads(r.content) for r in receiver.requests]
    assert [(b["event"], b["status"]) for b in bodies] == [
        ("execution.failed", "cancelled"), ("execution.failed", "timeout")]  # fmt: skip
    assert all(b["error_message"] for b in bodies)


async def test_a_repeated_identical_terminal_update_does_not_queue_a_second_delivery(
    store: ExecutionStore, redis_client: Redis
) -> None:
    execution_id = await _terminal(store)
    job_key = store.keys.arq_job(delivery_job_id(execution_id))
    await redis_client.delete(job_key)
    now = now_ms()
    again = await store.finish(execution_id, "succeeded", rfc3339(now), now, result=b'{"x":1}')
    assert again.outcome == "noop"
    assert await redis_client.exists(job_key) == 0


async def test_failures_are_retried_on_schedule_then_delivered_with_one_webhook_id(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    execution_id = await _terminal(store)
    receiver = Receiver(503, 500)
    deliverer = _deliverer(outbox, settings, receiver)
    assert await deliverer.deliver(execution_id) == 1.0
    assert (await _view(store, execution_id))["webhook_status"] == "pending"
    assert await deliverer.deliver(execution_id) == 2.0
    assert await deliverer.deliver(execution_id) is None
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"msg_" + execution_id[5:]}
    assert len({r.content for r in receiver.requests}) == 1
    for request in receiver.requests:
        assert verify(request.content, request.headers, "s3cret", scheme="standard")
        assert request.headers["x-team"] == "a"
    view = await _view(store, execution_id)
    assert view["webhook_status"] == "delivered"
    assert "webhook_next_attempt_at" not in view
    events = view["webhook_events"]
    assert [(e["status"], e.get("http_status")) for e in events] == [
        ("failed", 503), ("failed", 500), ("delivered", 200)]  # fmt: skip
    assert [e["attempt"] for e in events] == [1, 2, 3]
    assert {e["event_type"] for e in events} == {"execution.completed"}
    assert all(isinstance(e["duration_ms"], int) for e in events)


async def test_a_failed_execution_announces_execution_failed(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    execution_id = await _terminal(store, status="failed")
    receiver = Receiver()
    await _deliverer(outbox, settings, receiver).deliver(execution_id)
    body = json.loads(receiver.requests[0].content)
    assert (body["event"], body["status"]) == ("execution.failed", "failed")
    assert body["error_message"] == "agent said no"


async def test_a_delivery_out_of_attempts_is_dead_listed_and_redriven_with_its_webhook_id(
    store: ExecutionStore, outbox: Outbox, settings: Settings, redis_client: Redis
) -> None:
    execution_id = await _terminal(store)
    failing = _deliverer(outbox, settings, Receiver(500, 500, 500))
    for _ in range(3):
        await failing.deliver(execution_id)
    view = await _view(store, execution_id)
    assert view["webhook_status"] == "failed"
    page = await outbox.dead(10)
    assert [d.execution_id for d in page.deliveries] == [execution_id]
    dead = page.deliveries[0]
    # The dead list is unauthenticated: it shows the receiver without its query (a token).
    assert (dead.attempts, dead.last_http_status) == (3, 500)
    assert dead.url == "https://hooks.example.com/in"
    redriven = await outbox.redrive(execution_id, now_ms())
    assert (redriven.webhook_status, redriven.webhook_id) == ("pending", "msg_" + execution_id[5:])
    assert (await outbox.dead(10)).deliveries == []
    assert await redis_client.zscore(store.keys.queue, delivery_job_id(execution_id)) is not None
    receiver = Receiver()
    assert await _deliverer(outbox, settings, receiver).deliver(execution_id) is None
    assert receiver.requests[0].headers["webhook-id"] == redriven.webhook_id
    view = await _view(store, execution_id)
    assert view["webhook_status"] == "delivered"
    assert len(view["webhook_events"]) == 4


async def test_a_delivered_webhook_can_be_sent_again(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    execution_id = await _terminal(store)
    receiver = Receiver()
    deliverer = _deliverer(outbox, settings, receiver)
    await deliverer.deliver(execution_id)
    assert (await outbox.redrive(execution_id, now_ms())).webhook_status == "pending"
    await deliverer.deliver(execution_id)
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert len(receiver.requests) == 2


async def test_410_kills_the_delivery_after_one_attempt(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    execution_id = await _terminal(store)
    assert await _deliverer(outbox, settings, Receiver(410)).deliver(execution_id) is None
    view = await _view(store, execution_id)
    assert view["webhook_status"] == "failed"
    assert "410" in view["webhook_events"][0]["error_message"]
    assert (await outbox.dead(10)).deliveries[0].last_http_status == 410


async def test_the_last_arq_try_does_not_schedule_another(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    execution_id = await _terminal(store)
    deliverer = _deliverer(outbox, settings, Receiver(503))
    assert await deliverer.deliver(execution_id, last_try=True) is None
    assert (await _view(store, execution_id))["webhook_status"] == "failed"


async def test_an_attempt_lost_with_its_worker_is_recorded_and_the_next_one_carries_on(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    execution_id = await _terminal(store)
    lost = await outbox.begin(execution_id, now_ms())
    assert isinstance(lost, Attempt)
    receiver = Receiver()
    assert await _deliverer(outbox, settings, receiver).deliver(execution_id) is None
    events = (await _view(store, execution_id))["webhook_events"]
    assert [(e["attempt"], e["status"]) for e in events] == [(1, "failed"), (2, "delivered")]
    assert "stopped" in events[0]["error_message"]
    assert not await outbox.record(lost, Outcome.DELIVERED, now_ms(), duration_ms=1)


async def test_losing_the_last_allowed_attempt_makes_the_delivery_dead(
    store: ExecutionStore, outbox: Outbox
) -> None:
    execution_id = await _terminal(store)
    for _ in range(outbox.max_attempts):
        assert isinstance(await outbox.begin(execution_id, now_ms()), Attempt)
    assert await outbox.begin(execution_id, now_ms()) == "done failed"
    assert (await outbox.dead(10)).deliveries[0].execution_id == execution_id


async def test_attempt_records_are_capped_to_the_newest(
    store: ExecutionStore, outbox: Outbox
) -> None:
    execution_id = await _terminal(store)
    for _ in range(WEBHOOK_EVENTS_MAX + 5):
        attempt = await outbox.begin(execution_id, now_ms())
        assert isinstance(attempt, Attempt)
        await outbox.record(attempt, Outcome.RETRY, now_ms(), duration_ms=1, error="x")
        await outbox.redis.hset(outbox.keys.webhook(execution_id), "round_attempts", "0")  # type: ignore[misc]  # redis-py's async stubs
    events = (await _view(store, execution_id))["webhook_events"]
    assert len(events) == WEBHOOK_EVENTS_MAX
    assert events[-1]["attempt"] == WEBHOOK_EVENTS_MAX + 5


async def test_redrive_refuses_unknown_plain_unfinished_and_closing_executions(
    store: ExecutionStore, outbox: Outbox, redis_client: Redis
) -> None:
    with pytest.raises(ExecutionNotFound):
        await outbox.redrive("exec_nope", now_ms())
    with pytest.raises(WebhookNotFound):
        await outbox.redrive(await _terminal(store, webhook=None), now_ms())
    request = ExecuteRequest(input={}, webhook=HOOK)
    queued = (await submit(store, "finance.deep_analysis", request, {})).execution_id
    with pytest.raises(ExecutionNotTerminal, match="queued"):
        await outbox.redrive(queued, now_ms())
    closing = await _terminal(store)
    await outbox.redis.hset(outbox.keys.webhook(closing), "state", "delivered")  # type: ignore[misc]  # redis-py's async stubs
    await redis_client.set(store.keys.arq_in_progress(delivery_job_id(closing)), b"1")
    with pytest.raises(WebhookBusy):
        await outbox.redrive(closing, now_ms())


async def test_the_dead_list_pages_newest_first_with_a_cursor(
    store: ExecutionStore, outbox: Outbox
) -> None:
    ids = []
    for _ in range(5):
        execution_id = await _terminal(store)
        attempt = await outbox.begin(execution_id, now_ms())
        assert isinstance(attempt, Attempt)
        await outbox.record(attempt, Outcome.DEAD, now_ms(), duration_ms=1, error="gone")
        ids.append(execution_id)
    seen: list[str] = []
    cursor = None
    for size in (2, 2, 1):
        page = await outbox.dead(2, cursor)
        assert len(page.deliveries) == size
        seen += [d.execution_id for d in page.deliveries]
        cursor = page.next_cursor
    assert cursor is None
    assert sorted(seen) == sorted(ids)
    assert seen[0] == ids[-1]


async def test_reads_splice_in_the_delivery_fields_and_never_the_secret(
    store: ExecutionStore, outbox: Outbox, settings: Settings
) -> None:
    delivered = await _terminal(store)
    await _deliverer(outbox, settings, Receiver()).deliver(delivered)
    plain = await _terminal(store, webhook=None)
    views = await store.get_views([delivered, "exec_unknown", plain])
    assert views[1] is None
    first, third = json.loads(views[0] or b""), json.loads(views[2] or b"")
    assert first["webhook_status"] == "delivered"
    assert first["result"] == {"x": 1}
    assert "webhook_status" not in third
    for raw in (views[0], await store.get_view(delivered)):
        assert b"s3cret" not in (raw or b"")


async def test_the_secret_is_not_in_the_hash_operators_read_yet_signs_the_delivery(
    store: ExecutionStore, outbox: Outbox, settings: Settings, redis_client: Redis
) -> None:
    execution_id = await _terminal(store)
    fields = await redis_client.hgetall(store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
    assert fields[b"webhook_url"] == b"https://hooks.example.com/in?token=t0p"
    assert not [name for name, value in fields.items() if b"s3cret" in name + value]
    receiver = Receiver()
    await _deliverer(outbox, settings, receiver).deliver(execution_id)
    (sent,) = receiver.requests
    verify(sent.content, sent.headers, "s3cret")
    ttl = await redis_client.ttl(store.keys.webhook_secret(execution_id))
    assert ttl >= await redis_client.ttl(store.keys.execution(execution_id))


async def test_delivery_keys_expire_with_the_execution(
    store: ExecutionStore, outbox: Outbox, settings: Settings, redis_client: Redis
) -> None:
    execution_id = await _terminal(store)
    await _deliverer(outbox, settings, Receiver(503)).deliver(execution_id)
    k = store.keys
    for key in (k.webhook(execution_id), k.webhook_events(execution_id),
                k.webhook_view(execution_id)):  # fmt: skip
        ttl = await redis_client.ttl(key)
        assert settings.retention_s - 5 <= ttl <= settings.retention_s, key


async def test_a_pending_delivery_and_its_job_survive_a_redis_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    config = from_env({}, redis_url=server.start(), key_prefix="t", webhook_retry_schedule_s="1")
    try:
        client = connect(config.redis_url)
        store = ExecutionStore(client, config)
        node = NodeRegistration(id="finance", base_url="http://127.0.0.1:9",
                                reasoners=[TargetSpec(id="deep_analysis")])  # fmt: skip
        await NodeRegistry(client, config).register(b'{"id": "finance"}', node)
        execution_id = await _terminal(store)
        await _deliverer(Outbox(client, config), config, Receiver(503)).deliver(execution_id)
        await client.aclose()
        server.stop()
        restarted = msgspec.structs.replace(config, redis_url=server.start())
        client = connect(restarted.redis_url)
        store = ExecutionStore(client, restarted)
        assert (await _view(store, execution_id))["webhook_status"] == "pending"
        job_id = delivery_job_id(execution_id)
        assert await client.zscore(store.keys.queue, job_id) is not None
        assert await client.exists(store.keys.arq_job(job_id)) == 1
        receiver = Receiver()
        outbox = Outbox(client, restarted)
        assert await _deliverer(outbox, restarted, receiver).deliver(execution_id) is None
        assert (await _view(store, execution_id))["webhook_status"] == "delivered"
        await client.aclose()
    finally:
        server.stop()
