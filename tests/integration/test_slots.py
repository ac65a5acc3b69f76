"""Per-node call slots in Redis (node_slot.lua): a cap across the fleet, deferrals that spend
no try of arq's, slots that lapse when their worker is gone, and a node's own lower cap."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import NodeSlots
from agentfield_arq.kernel.codec import now_ms
from agentfield_arq.kernel.models import NodeRegistration

pytestmark = pytest.mark.integration

NOW_MS = 1_000_000


async def _node(redis: Redis, settings: Settings, executions: int, **fields: object) -> NodeSlots:
    """Node `hang` and `executions` queued records naming it (`exec_0`...), each with a run job
    that arq has started once (its try counter is 1)."""
    node = msgspec.convert({"id": "hang", "base_url": "http://hang:1", **fields}, NodeRegistration)
    await NodeRegistry(redis, settings).register(b'{"id": "hang"}', node)
    slots = NodeSlots(redis, settings)
    for n in range(executions):
        record = {"node_id": "hang", "status": "queued"}
        await redis.hset(slots.keys.execution(f"exec_{n}"), mapping=record)  # type: ignore[misc]  # redis-py's async stubs
        await redis.set(slots.keys.arq_retry(f"exec_{n}"), 1)
    return slots


async def test_a_node_gets_slots_up_to_its_cap_then_executions_wait_longer_each_time(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=2, node_wait_max_s=1.0)
    slots = await _node(redis_client, settings, 3)
    taken = [await slots.take(f"exec_{n}", NOW_MS) for n in range(3)]
    assert [s.taken if s else None for s in taken] == [True, True, False]
    waits = [taken[2].wait_s]  # type: ignore[union-attr]
    for _ in range(5):
        slot = await slots.take("exec_2", NOW_MS)
        assert slot is not None
        assert not slot.taken
        waits.append(slot.wait_s)
    # 0.1 s doubling, jittered over its upper half, capped at NODE_WAIT_MAX_S.
    assert 0.05 <= waits[0] <= 0.1
    assert all(0.5 <= w <= 1.0 for w in waits[-2:])
    assert await slots.in_flight("hang", NOW_MS) == 2


async def test_waiting_for_a_slot_spends_no_try_of_arq_and_no_attempt(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 2)
    await slots.take("exec_0", NOW_MS)
    for _ in range(5):
        slot = await slots.take("exec_1", NOW_MS)
        assert slot is not None
        assert not slot.taken
        # arq adds one at the next start, and the job is again at its first try.
        assert await redis_client.get(slots.keys.arq_retry("exec_1")) == b"0"
        await redis_client.incr(slots.keys.arq_retry("exec_1"))
    fields = await redis_client.hgetall(slots.keys.execution("exec_1"))  # type: ignore[misc]  # redis-py's async stubs
    assert b"attempt" not in fields
    assert fields[b"deferrals"] == b"5"


async def test_a_slot_given_back_goes_to_the_next_execution(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 2)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    assert not (await slots.take("exec_1", NOW_MS)).taken  # type: ignore[union-attr]
    await slots.give_back("hang", "exec_0")
    assert (await slots.take("exec_1", NOW_MS)).taken  # type: ignore[union-attr]


async def test_the_slot_of_a_worker_that_died_lapses_after_the_longest_job(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 2)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    # Never given back: its worker was SIGKILLed.
    just_before = NOW_MS + slots.lease_ms - 1
    assert not (await slots.take("exec_1", just_before)).taken  # type: ignore[union-attr]
    assert (await slots.take("exec_1", NOW_MS + slots.lease_ms)).taken  # type: ignore[union-attr]
    assert await slots.in_flight("hang", NOW_MS + slots.lease_ms) == 1
    ttl_ms = await redis_client.pttl(slots.keys.node_slots("hang"))
    assert 0 < ttl_ms <= slots.lease_ms


async def test_a_worker_asking_again_for_the_slot_it_holds_keeps_it(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 1)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]


async def test_a_node_may_ask_for_a_lower_cap_but_not_a_higher_one(
    redis_client: Redis, settings: Settings
) -> None:
    low = msgspec.structs.replace(settings, node_max_in_flight=3)
    slots = await _node(redis_client, low, 3, max_in_flight=1)
    assert [(await slots.take(f"exec_{n}", NOW_MS)).taken for n in range(2)] == [True, False]  # type: ignore[union-attr]
    high = msgspec.structs.replace(settings, node_max_in_flight=1)
    await redis_client.flushall()
    slots = await _node(redis_client, high, 3, max_in_flight=50)
    assert [(await slots.take(f"exec_{n}", NOW_MS)).taken for n in range(2)] == [True, False]  # type: ignore[union-attr]


async def test_an_execution_without_a_record_gets_no_slot_and_no_wait(
    redis_client: Redis, settings: Settings
) -> None:
    slots = await _node(redis_client, settings, 0)
    assert await slots.take("exec_gone", NOW_MS) is None
    assert await redis_client.exists(slots.keys.node_slots("hang")) == 0


async def test_an_execution_that_has_ended_needs_no_slot_even_when_the_node_is_full(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 2)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    await redis_client.hset(slots.keys.execution("exec_1"), "status", "cancelled")  # type: ignore[misc]  # redis-py's async stubs
    # Not deferred until the node has room: the claim that follows skips it at once.
    assert await slots.take("exec_1", NOW_MS) is None
    assert await slots.in_flight("hang", NOW_MS) == 1


async def _queued(redis: Redis, slots: NodeSlots, **due_in_ms: int) -> None:
    """Put run jobs in arq's queue, due `due_in_ms` from now (negative: a worker runs them)."""
    now = now_ms()
    await redis.zadd(slots.keys.queue, {eid: now + ms for eid, ms in due_in_ms.items()})


async def test_a_freed_slot_wakes_the_oldest_waiter_of_its_node_at_once(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 3)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    assert not (await slots.take("exec_1", NOW_MS)).taken  # type: ignore[union-attr]
    assert not (await slots.take("exec_2", NOW_MS + 1)).taken  # type: ignore[union-attr]
    # Their jobs went back to the queue for their waits, as arq's Retry puts them.
    await _queued(redis_client, slots, exec_1=60_000, exec_2=60_000)
    before = now_ms()
    assert await slots.give_back("hang", "exec_0") == "exec_1"
    assert (await redis_client.zscore(slots.keys.queue, "exec_1") or 0) <= now_ms()
    assert (await redis_client.zscore(slots.keys.queue, "exec_2") or 0) > before + 50_000
    assert await redis_client.zrange(slots.keys.node_waiting("hang"), 0, -1) == [b"exec_2"]
    # The woken one takes the slot and leaves the list; the next freed slot wakes exec_2.
    assert (await slots.take("exec_1", NOW_MS)).taken  # type: ignore[union-attr]
    assert await slots.give_back("hang", "exec_1") == "exec_2"


async def test_a_freed_slot_leaves_a_running_job_to_arq_and_forgets_a_finished_one(
    redis_client: Redis, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 4)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    for n in (1, 2, 3):
        assert not (await slots.take(f"exec_{n}", NOW_MS + n)).taken  # type: ignore[union-attr]
    # exec_1's job is gone from the queue; exec_2's is being run (due in the past).
    await _queued(redis_client, slots, exec_2=-1_000, exec_3=60_000)
    running = await redis_client.zscore(slots.keys.queue, "exec_2")
    assert await slots.give_back("hang", "exec_0") == "exec_3"
    assert await redis_client.zscore(slots.keys.queue, "exec_2") == running
    assert await redis_client.zrange(slots.keys.node_waiting("hang"), 0, -1) == [b"exec_2"]


async def test_a_freed_slot_with_nobody_waiting_wakes_nothing(
    redis_client: Redis, settings: Settings
) -> None:
    slots = await _node(redis_client, settings, 1)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    assert await slots.give_back("hang", "exec_0") is None
    assert await slots.in_flight("hang", NOW_MS) == 0


async def test_a_give_back_that_redis_failed_is_tried_again_until_the_slot_is_free(
    redis_client: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call in flight when Redis went away: its give-back fails, and the slot must not stay
    # held until it lapses (the longest job) while the node's other executions wait.
    settings = msgspec.structs.replace(settings, node_max_in_flight=1)
    slots = await _node(redis_client, settings, 2)
    assert (await slots.take("exec_0", NOW_MS)).taken  # type: ignore[union-attr]
    real = slots._free
    failures: list[dict[str, object]] = []
    freed = asyncio.Event()

    async def down_then_back(**kwargs: object) -> object:
        if len(failures) < 2:
            failures.append(kwargs)
            raise RedisConnectionError("redis is away")
        woken = await real(**kwargs)  # type: ignore[arg-type]
        freed.set()
        return woken

    monkeypatch.setattr(slots, "_free", down_then_back)
    with pytest.raises(RedisConnectionError):
        await slots.give_back("hang", "exec_0")
    slots.give_back_later("hang", "exec_0")
    await asyncio.wait_for(freed.wait(), 10)
    assert len(failures) == 2
    assert (await slots.take("exec_1", now_ms())).taken  # type: ignore[union-attr]
