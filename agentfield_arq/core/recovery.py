"""Executions given back to the queue when whoever had them went away: a worker whose lease
lapsed (the reaper), a node that came back as a new instance, or a system being stopped.

Each hand-back is `ExecutionStore.requeue`, fenced on the attempt, job and holder read just
before, so that any number of reapers may race: one wins, the others find the execution moved.
"""

from __future__ import annotations

import logging
from collections.abc import Set as AbstractSet

from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import run_job_execution
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, HandBack, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339, text
from agentfield_arq.kernel.status import Status

logger = logging.getLogger(__name__)

AWAITING = "awaiting_callback"
RESTART_ERROR = "the node restarted before reporting the execution"


async def reap(
    store: ExecutionStore,
    live_workers: set[str],
    *,
    lapsed_only: bool = True,
    worker_id: str = "",
    running: AbstractSet[str] = frozenset(),
) -> int:
    """Queue again every execution held by a worker not in `live_workers` (and, with
    `lapsed_only`, whose lease has lapsed by the time of the hand-back), without spending its
    attempt; returns how many were queued.

    With `worker_id`, the reaping worker's own, also what that live worker is recorded as
    holding but does not run (no job of it in `running`, its Runner's run jobs): a hold whose
    settle was lost (a failover lost the write, or the primary promoted never had it) would
    otherwise keep the execution `running` for ever, every other worker refusing it as held."""
    queued = 0
    holders = await store.holders()
    ran = {run_job_execution(job) for job in running}
    for execution_id, holder in holders.items():
        mine = bool(worker_id) and holder == worker_id
        if (mine and execution_id in ran) or (not mine and holder in live_workers):
            continue
        fields = await store.fence(execution_id)
        # The Runner adds a job to `running` before it claims: if it is not there now, any
        # claim of this worker comes after the fence just read, and the hand-back skips.
        if mine and _runs(running, execution_id):
            continue
        if fields.get("status") != Status.RUNNING or "attempt" not in fields:
            await store.forget_holder(execution_id, holder)
            continue
        reason = f"worker {holder} no longer runs it" if mine else f"worker {holder} lost"
        back = HandBack(reason=reason, holder=holder, lapsed_only=lapsed_only and not mine)
        if await store.requeue(execution_id, fields, back):
            queued += 1
            logger.warning("requeued execution_id=%s: %s", execution_id, reason)
    return queued


def _runs(running: AbstractSet[str], execution_id: str) -> bool:
    return any(run_job_execution(job) == execution_id for job in running)


async def node_restarted(store: ExecutionStore, node_id: str, on_restart: str) -> int:
    """A node came back as a new instance: what it accepted with 202 and never reported is
    queued again (charged: it did start), or failed when the node asked for that."""
    handled = 0
    for execution_id in await store.awaiting(node_id, now_ms()):
        fields = await store.fence(execution_id)
        if fields.get("phase") != AWAITING or fields.get("node_id") != node_id:
            continue
        if on_restart == "fail":
            now = now_ms()
            transition = await store.finish(
                execution_id, Status.FAILED, rfc3339(now), now, error=RESTART_ERROR
            )
            done = transition.outcome is Outcome.OK
        else:
            back = HandBack(reason="node restarted", charged=True, phase=AWAITING)
            done = await store.requeue(execution_id, fields, back)
        if done:
            handled += 1
            logger.warning(
                "node_id=%s restarted: execution_id=%s %s", node_id, execution_id, on_restart
            )
    return handled


async def stopped(store: ExecutionStore, node_ids: list[str]) -> int:
    """The system is stopping and these nodes are gone: what they accepted and never reported
    goes back to `queued` (not spending an attempt), so that nothing stays `running`."""
    handled = 0
    for node_id in node_ids:
        for execution_id in await store.awaiting(node_id, now_ms()):
            fields = await store.fence(execution_id)
            if fields.get("phase") != AWAITING:
                continue
            back = HandBack(reason="system stopped", phase=AWAITING)
            handled += await store.requeue(execution_id, fields, back)
    return handled


async def requeue_leftovers(redis: Redis, settings: Settings, node_ids: list[str]) -> int:
    """The system stopped its workers and the agents of `node_ids`: what the workers still
    held (one killed before its drain ended) and what those agents never reported goes back to
    `queued`; returns how many. Workers whose lease is still live (other processes on the same
    Redis) keep what they hold."""
    store = ExecutionStore(redis, settings)
    now = now_ms()
    leases = await redis.zrangebyscore(Keys(settings.key_prefix).workers, f"({now}", "+inf")
    live = {text(w) for w in leases}
    return await reap(store, live) + await stopped(store, node_ids)
