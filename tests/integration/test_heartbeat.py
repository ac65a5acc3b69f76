"""The worker lease beats from a thread of its own: a busy event loop keeps its lease, a wedged
one loses it, and a released lease stays released."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest
import redis

from agentfield_arq.core.connection import connect_sync
from agentfield_arq.core.execution import submit
from agentfield_arq.core.lease import Heartbeat, WorkerLease
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration

WAIT_S = 10.0  # the bound of every wait below; each ends on what it waits for


@pytest.fixture
def sync_client(settings: Settings) -> Iterator[redis.Redis]:
    client = connect_sync(settings.redis_url, settings)
    yield client
    client.close()


def _score(client: redis.Redis, lease: WorkerLease) -> float | None:
    score: float | None = client.zscore(lease.keys.workers, lease.worker_id)  # type: ignore[assignment]  # redis-py types sync and async alike
    return score


def _block_until(done: Callable[[], bool], what: str) -> None:
    """Hold the event loop (no await) until `done()` is true; at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S}s"
        time.sleep(0.01)


async def test_a_loop_blocked_for_longer_than_the_lease_keeps_its_lease(
    redis_client: redis.asyncio.Redis, settings: Settings, sync_client: redis.Redis
) -> None:
    settings = msgspec.structs.replace(settings, worker_lease_s=0.3)
    lease = WorkerLease(redis_client, settings, "wrk_busy")
    await lease.beat()
    first = _score(sync_client, lease)
    assert first is not None
    lease.start_heartbeat(sync_client)
    ticked = lease.ticked
    # Blocked from before the first lease ends until a renewal made after it ended.
    _block_until(lambda: (_score(sync_client, lease) or 0) > first + 300, "renewal")
    assert lease.ticked == ticked  # the loop never ran meanwhile
    assert (_score(sync_client, lease) or 0) > now_ms()
    await lease.release()


async def test_a_running_loop_is_ticked_by_each_beat_without_a_turn_of_the_lease(
    redis_client: redis.asyncio.Redis, settings: Settings, sync_client: redis.Redis
) -> None:
    # Its turns (the reaper) may wait behind thousands of calls: liveness is one callback run.
    settings = msgspec.structs.replace(settings, worker_lease_s=0.3)
    lease = WorkerLease(redis_client, settings, "wrk_running")
    lease.start_heartbeat(sync_client)
    first = lease.ticked
    deadline = time.monotonic() + WAIT_S
    while lease.ticked == first:
        assert time.monotonic() < deadline, f"no tick within {WAIT_S}s"
        await asyncio.sleep(0.01)
    await lease.release()


async def test_a_loop_wedged_past_the_stall_bound_loses_its_lease(
    redis_client: redis.asyncio.Redis, settings: Settings, sync_client: redis.Redis
) -> None:
    settings = msgspec.structs.replace(settings, worker_lease_s=0.3, worker_stall_s=0.6)
    lease = WorkerLease(redis_client, settings, "wrk_wedged")
    await lease.beat()
    lease.start_heartbeat(sync_client)
    _block_until(lambda: (_score(sync_client, lease) or 0) < now_ms(), "lapse")
    assert lease.heartbeat is not None
    assert lease.heartbeat.beating
    await lease.release()


async def test_a_released_lease_is_not_renewed_by_a_late_beat(
    redis_client: redis.asyncio.Redis, settings: Settings, sync_client: redis.Redis
) -> None:
    lease = WorkerLease(redis_client, settings, "wrk_leaving")
    await lease.beat()
    lease.start_heartbeat(sync_client)
    await lease.release()
    assert lease.heartbeat is not None
    assert not lease.heartbeat.beating
    assert _score(sync_client, lease) == 0


async def test_a_failed_beat_of_the_thread_has_the_next_reap_read_the_holders(
    redis_client: redis.asyncio.Redis, settings: Settings
) -> None:
    nodes = NodeRegistry(redis_client, settings)
    node = NodeRegistration(
        id="finance", base_url="http://finance.test:8001", reasoners=[TargetSpec(id="a")]
    )
    await nodes.register(b'{"id": "finance"}', node)
    store = ExecutionStore(redis_client, settings)
    lease = WorkerLease(redis_client, settings, "wrk_live")
    await lease.beat()
    await lease.reap()  # its first, full scan: nothing held yet
    execution_id = (await submit(store, "finance.a", ExecuteRequest(input={}), {})).execution_id
    now = now_ms()
    claim = await store.claim(execution_id, rfc3339(now), now, worker_id="wrk_live")
    assert claim.outcome is Outcome.OK
    assert await lease.reap() == 0  # not a full scan: the holders are not read
    gone = redis.Redis(port=1, socket_connect_timeout=0.5)  # nothing listens on port 1
    beat = Heartbeat(lease, gone, asyncio.get_running_loop())
    assert not beat.beat()  # the thread's beat, called here: not started
    gone.close()
    assert await lease.reap() == 1  # the hold whose settle may have been lost, handed back
