"""Per-node call slots: how many agent calls to one node may be in flight across the fleet.

Without a cap, a node that never answers takes every worker slot it is sent work for, and work
for every other node waits in the queue behind it. A worker takes a slot of the execution's node
before it claims the execution (`node_slot.lua`) and gives it back when its call ends. A node at
its cap gets no more calls: the job goes back to arq's queue for a short wait that grows with
each deferral, without counting as one of arq's tries or as an attempt of the execution, and
without holding a worker slot meanwhile. A freed slot wakes the oldest waiter of its node at
once (`node_slot_free.lua`; when the worker's own step records the call's answer, `finish.lua`
or `await_callback.lua` frees it in that step: `store.RunEnd`), so the wait is a fallback, not
the pace. A slot lapses on its own after the longest a job may run, so that the slots of a
worker that died free themselves. A give-back that Redis failed (an outage during the call) is
tried again in the background until Redis takes it (`give_back_later`): without that, each call
in flight when Redis went away kept its slot for the longest job, and a node whose slots were
all in flight then ran a call or two at a time, held by the slots that lapse on their own only
after an hour.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.codec import now_ms, text

logger = logging.getLogger(__name__)

# The first wait of an execution whose node is at its cap; it doubles up to NODE_WAIT_MAX_S.
WAIT_BASE_S = 0.1
# A slot outlives the longest run of its job by this much before it lapses.
LEASE_GRACE_S = 5.0
# node_slot.lua's answer for an execution that is gone or has ended.
NOT_NEEDED = 2
# Waiters a freed slot looks at for one to wake (the ones before it may be running already).
WAKE_SCAN = 10
# A give-back Redis failed is tried again after this, doubling up to the cap.
RETRY_BASE_S = 0.2
RETRY_CAP_S = 5.0


class Slot(msgspec.Struct, kw_only=True):
    """The answer of `take`: whether the slot was taken, else how long to wait."""

    node_id: str
    taken: bool
    cap: int
    wait_s: float = 0.0


class NodeSlots:
    """Takes and gives back per-node call slots."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self.lease_ms = int((settings.job_timeout_s + LEASE_GRACE_S) * 1000)
        self._take = load_script(redis, "node_slot")
        self._free = load_script(redis, "node_slot_free")
        # The give-backs being tried again (kept referenced until they end).
        self._owed: set[asyncio.Task[None]] = set()

    async def take(self, execution_id: str, now: int, job_id: str | None = None) -> Slot | None:
        """A slot of the execution's node for its run job `job_id` (its first by default), or
        the wait before that job asks again; None when the execution needs none (it is gone
        or has ended: the claim will say so)."""
        job_id = job_id or execution_id
        k = self.keys
        reply = await self._take(
            keys=[k.execution(execution_id), k.arq_retry(job_id)],
            args=[
                execution_id,
                now,
                self.lease_ms,
                self.settings.node_in_flight_cap,
                job_id,
                k.node_slots(""),
                k.node(""),
                k.node_waiting(""),
            ],
        )
        taken, deferrals, cap = (int(v) for v in reply[:3])
        node_id = text(reply[3])
        if taken == NOT_NEEDED:
            return None
        if taken:
            return Slot(node_id=node_id, taken=True, cap=cap)
        wait_s = backoff_s(deferrals, WAIT_BASE_S, self.settings.node_wait_max_s)
        # Once at info; the waits after it would flood the log while a node hangs.
        logger.log(
            logging.INFO if deferrals == 1 else logging.DEBUG,
            "node at its cap execution_id=%s node_id=%s cap=%d: waiting %.2fs",
            execution_id,
            node_id,
            cap,
            wait_s,
        )
        return Slot(node_id=node_id, taken=False, cap=cap, wait_s=wait_s)

    async def give_back(self, node_id: str, execution_id: str) -> str | None:
        """The call has ended: free its slot, and wake the oldest execution waiting for one of
        this node; returns the id of the one woken, if any."""
        k = self.keys
        woken = await self._free(
            keys=[k.node_slots(node_id), k.node_waiting(node_id), k.queue],
            args=[execution_id, now_ms(), WAKE_SCAN],
        )
        if not woken:
            return None
        logger.debug("slot freed execution_id=%s woke execution_id=%s", execution_id, text(woken))
        return text(woken)

    def give_back_later(self, node_id: str, execution_id: str) -> None:
        """A give-back that Redis failed: try it again in the background, with a growing
        delay, until Redis takes it or the slot has lapsed on its own."""
        task = asyncio.create_task(self._give_back_until_taken(node_id, execution_id))
        self._owed.add(task)
        task.add_done_callback(self._owed.discard)

    async def _give_back_until_taken(self, node_id: str, execution_id: str) -> None:
        lapsed = time.monotonic() + self.lease_ms / 1000
        tries = 0
        while time.monotonic() < lapsed:
            tries += 1
            await asyncio.sleep(backoff_s(tries, RETRY_BASE_S, RETRY_CAP_S))
            try:
                await self.give_back(node_id, execution_id)
            except RedisError:
                continue
            logger.info("slot given back execution_id=%s after %d tries", execution_id, tries)
            return

    async def in_flight(self, node_id: str, now: int) -> int:
        """How many slots of the node are held at `now` (lapsed ones not counted)."""
        count: int = await self.redis.zcount(self.keys.node_slots(node_id), f"({now}", "+inf")
        return count
