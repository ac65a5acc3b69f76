"""Executions given back when whoever had them went away: the worker lease and its reaper, a
node coming back as a new instance, a node silent past its lease at submit."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from agentfield_arq.core.execution import submit
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.lease import WorkerLease
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.recovery import node_restarted, stopped
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import NodeSlots
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.errors import NodeUnavailable
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration

NODE = "finance"


@pytest.fixture
async def nodes(redis_client: Redis, settings: Settings) -> NodeRegistry:
    registry = NodeRegistry(redis_client, settings)
    await _register(registry, "instance-1")
    return registry


async def _register(nodes: NodeRegistry, instance_id: str, **policy: Any) -> bool:
    node = NodeRegistration(
        id=NODE,
        base_url="http://finance.test:8001",
        reasoners=[TargetSpec(id="deep_analysis")],
        instance_id=instance_id,
        **policy,
    )
    return (await nodes.register(b'{"id": "finance"}', node)).restarted


@pytest.fixture
def store(redis_client: Redis, settings: Settings, nodes: NodeRegistry) -> ExecutionStore:
    return ExecutionStore(redis_client, settings)


async def _submit(store: ExecutionStore, **body: Any) -> str:
    request = ExecuteRequest(input={}, **body)
    return (await submit(store, f"{NODE}.deep_analysis", request, {})).execution_id


async def _claim(store: ExecutionStore, execution_id: str, worker_id: str) -> dict[str, str]:
    now = now_ms()
    claim = await store.claim(execution_id, rfc3339(now), now, worker_id=worker_id)
    assert claim.outcome is Outcome.OK
    return claim.fields


async def _fields(store: ExecutionStore, execution_id: str) -> dict[str, str]:
    raw = await store.redis.hgetall(store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_the_reaper_queues_again_what_a_worker_with_a_lapsed_lease_held(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    dead = WorkerLease(redis_client, settings, "wrk_dead")
    await dead.beat()
    execution_id = await _submit(store)
    await _claim(store, execution_id, "wrk_dead")
    await redis_client.zadd(store.keys.workers, {"wrk_dead": now_ms() - 1})
    assert await WorkerLease(redis_client, settings, "wrk_reaper").reap() == 1
    fields = await _fields(store, execution_id)
    assert (fields["status"], fields["uncharged"]) == ("queued", "1")
    assert fields["job"] != execution_id
    assert await store.holders() == {}
    assert await redis_client.zscore(store.keys.workers, "wrk_dead") is None


async def test_the_reaper_leaves_alone_what_a_live_worker_holds(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    live = WorkerLease(redis_client, settings, "wrk_live")
    await live.beat()
    execution_id = await _submit(store)
    await _claim(store, execution_id, "wrk_live")
    reaper = WorkerLease(redis_client, settings, "wrk_reaper")
    for _ in range(12):  # past a full scan of the holders
        assert await reaper.reap() == 0
    assert (await _fields(store, execution_id))["status"] == "running"


async def test_a_live_worker_hands_back_what_it_holds_but_no_longer_runs(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    # A failover lost its settle: the promoted primary says it holds what it ended long ago.
    lease = WorkerLease(redis_client, settings, "wrk_live")
    await lease.beat()
    execution_id = await _submit(store)
    await _claim(store, execution_id, "wrk_live")
    assert await lease.reap() == 1
    fields = await _fields(store, execution_id)
    assert (fields["status"], fields["uncharged"]) == ("queued", "1")
    assert fields["requeued"] == "worker wrk_live no longer runs it"
    assert await redis_client.zscore(store.keys.queue, fields["job"]) is not None
    assert await store.holders() == {}


async def test_a_live_worker_keeps_what_it_runs_and_another_s_holds(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    other = WorkerLease(redis_client, settings, "wrk_other")
    await other.beat()
    lease = WorkerLease(redis_client, settings, "wrk_live", running=set())
    await lease.beat()
    mine, theirs = await _submit(store), await _submit(store)
    await _claim(store, mine, "wrk_live")
    await _claim(store, theirs, "wrk_other")
    lease.running.add(mine)  # the Runner's entry: the first run job's id is the execution's
    assert await lease.reap() == 0
    assert await store.holders() == {mine: "wrk_live", theirs: "wrk_other"}


async def test_a_live_worker_reads_its_holds_at_the_first_beat_after_redis_failed_it(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    lease = WorkerLease(redis_client, settings, "wrk_live")
    await lease.beat()
    await lease.reap()  # its first, full scan: nothing held yet
    execution_id = await _submit(store)
    await _claim(store, execution_id, "wrk_live")
    assert await lease.reap() == 0  # no lease lapsed, not a full scan: the holders are not read
    with mock.patch.object(lease, "beat", side_effect=RedisConnectionError("primary gone")):
        await lease.turn()
    await lease.turn()
    assert (await _fields(store, execution_id))["status"] == "queued"


async def test_a_handed_back_attempt_can_no_longer_settle_the_execution(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    execution_id = await _submit(store)
    fields = await _claim(store, execution_id, "wrk_dead")
    await WorkerLease(redis_client, settings, "wrk_reaper").reap()  # no lease: lapsed
    now = now_ms()
    late = await store.finish(
        execution_id, "succeeded", rfc3339(now), now, result=b"1", attempt=fields["attempt"]
    )
    assert late.outcome is Outcome.STALE


async def test_a_node_back_as_a_new_instance_has_its_unreported_executions_queued_again(
    store: ExecutionStore, nodes: NodeRegistry
) -> None:
    execution_id = await _submit(store)
    fields = await _claim(store, execution_id, "")
    assert await store.await_callback(execution_id, fields["attempt"], NODE)
    assert not await _register(nodes, "instance-1")  # the same instance again: nothing to do
    assert await _register(nodes, "instance-2")
    assert await node_restarted(store, NODE, "redispatch") == 1
    after = await _fields(store, execution_id)
    assert (after["status"], after.get("uncharged")) == ("queued", None)


async def test_a_node_that_asked_to_fail_on_restart_has_its_unreported_executions_failed(
    store: ExecutionStore, nodes: NodeRegistry
) -> None:
    execution_id = await _submit(store)
    fields = await _claim(store, execution_id, "")
    await store.await_callback(execution_id, fields["attempt"], NODE)
    assert await node_restarted(store, NODE, "fail") == 1
    assert (await _fields(store, execution_id))["status"] == "failed"


async def test_a_stopping_system_puts_what_agents_never_reported_back_to_queued(
    store: ExecutionStore,
) -> None:
    execution_id = await _submit(store)
    fields = await _claim(store, execution_id, "")
    await store.await_callback(execution_id, fields["attempt"], NODE)
    assert await stopped(store, [NODE]) == 1
    assert (await _fields(store, execution_id))["status"] == "queued"


async def test_a_node_silent_past_its_lease_refuses_new_executions_with_a_retry_after(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    silent_since = now_ms() - round(settings.node_lease_s * 1000) - 1000
    await redis_client.hset(store.keys.node(NODE), "last_heartbeat_ms", str(silent_since))  # type: ignore[misc]  # redis-py's async stubs
    with pytest.raises(NodeUnavailable) as refused:
        await _submit(store)
    assert refused.value.retry_after_s is not None
    assert await _submit(store, queue_if_unavailable=True)


async def test_a_worker_s_lease_renews_arq_s_locks_of_the_jobs_it_runs(
    redis_client: Redis, settings: Settings
) -> None:
    lock = Keys.arq_in_progress("exec_long")
    await redis_client.set(lock, b"1", px=1000)
    lease = WorkerLease(redis_client, settings, "wrk_busy", running={"exec_long"})
    await lease.beat()
    assert await redis_client.pttl(lock) > 1000


async def test_arq_starting_a_job_its_worker_still_runs_does_not_claim_it_again(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    await WorkerLease(redis_client, settings, "wrk_busy").beat()
    execution_id = await _submit(store)
    await _claim(store, execution_id, "wrk_busy")
    now = now_ms()
    again = await store.claim(execution_id, rfc3339(now), now, worker_id="wrk_busy")
    assert again.outcome is Outcome.HELD


async def test_what_a_stopped_worker_could_not_hand_back_is_reaped_at_the_next_beat(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    leaving = WorkerLease(redis_client, settings, "wrk_leaving")
    await leaving.beat()
    reaper = WorkerLease(redis_client, settings, "wrk_reaper")
    await reaper.reap()  # its first, full scan: nothing held yet
    execution_id = await _submit(store)
    await _claim(store, execution_id, "wrk_leaving")
    await leaving.release()
    assert await reaper.reap() == 1  # not a full scan: the lapsed lease is what it sees
    assert (await _fields(store, execution_id))["status"] == "queued"


async def test_the_reaper_frees_the_node_slot_a_lost_worker_held(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    slots = NodeSlots(redis_client, settings)
    execution_id = await _submit(store)
    slot = await slots.take(execution_id, now_ms())
    assert slot is not None
    assert slot.taken
    await _claim(store, execution_id, "wrk_dead")  # no lease: lapsed
    await WorkerLease(redis_client, settings, "wrk_reaper").reap()
    assert await slots.in_flight(NODE, now_ms()) == 0
