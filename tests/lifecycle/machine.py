"""The machine's base: the production objects it drives, the fake clock, the model's
state, and the predictions shared by several rules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from unittest import mock

import httpx
from hypothesis.stateful import RuleBasedStateMachine
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import delivery_job_id, tell_agent_job_id
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Attempt, Outbox
from agentfield_arq.core.runner import DEADLINE_ERROR, Runner
from agentfield_arq.core.slots import WAKE_SCAN, NodeSlots
from agentfield_arq.core.store import ExecutionStore, Outcome, RunEnd
from agentfield_arq.kernel.codec import rfc3339
from agentfield_arq.kernel.models import NodeRegistration, TargetSpec
from agentfield_arq.kernel.status import TargetKind
from tests.lifecycle.model import (
    NAME,
    NODE,
    OTHER_NODE,
    T0_MS,
    Backend,
    Delivery,
    Run,
)
from tests.lifecycle.snapshot import Snapshot, read

T = TypeVar("T")


class MachineBase(RuleBasedStateMachine):
    """State and helpers of the lifecycle machine; the rules and invariants are mixins of it
    (executions.py, deliveries.py, nodes.py, invariants.py), composed in lifecycle.py."""

    backend: Backend
    replaying = False
    # Every invariant at once (invariants.py), for `replay`.
    check: Callable[[], None]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        settings = self.backend.settings
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis: Redis = self.run(self.backend.open())
        self.store = ExecutionStore(self.redis, settings)
        self.outbox = Outbox(self.redis, settings)
        self.nodes = NodeRegistry(self.redis, settings)
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(_no_agent_call))
        self.runner = Runner(self.store, self.nodes, self.http, settings)
        node = NodeRegistration(
            id=NODE, base_url="http://agent.test", reasoners=[TargetSpec(id=NAME)]
        )
        self.run(self.nodes.register(b"{}", node))
        self.targets: dict[str, dict[str, str]] = {NODE: {NAME: TargetKind.REASONER.value}}
        self.node_ids = {NODE}
        self.now = T0_MS
        self.runs: list[Run] = []
        self.backend.sequences += 1
        self.workers: dict[int, tuple[Run, str]] = {}
        # The run job each worker with a claim runs (the claim's job id).
        self.job_of: dict[int, str] = {}
        self.couriers: dict[int, Attempt] = {}
        # arq's queue: job id -> when it may run (unix ms).
        self.queued: dict[str, int] = {}
        self.locks: set[str] = set()
        self.dead_jobs: set[str] = set()
        # Per node (node_slot.lua): the slots held (execution -> when it lapses) and the
        # waiting list (execution -> first deferral), each key with when Redis expires it.
        self.slots = NodeSlots(self.redis, settings)
        self.held: dict[str, dict[str, int]] = {}
        self.waiting: dict[str, dict[str, int]] = {}
        self.key_expiry: dict[str, int] = {}
        self.slot_of: dict[int, tuple[str, str]] = {}
        # Worker leases (af:workers: worker id -> when it lapses) and holders (af:holders:
        # execution -> worker id); a crashed worker comes back under a new id (its generation).
        self.leases: dict[str, int] = {}
        self.holders: dict[str, str] = {}
        self.generation: dict[int, int] = {}
        self._snap: tuple[int, Snapshot] | None = None
        self.steps = 0

    def run(self, step: Awaitable[T]) -> T:
        """Run one coroutine on the machine's loop."""
        return self.loop.run_until_complete(step)

    def teardown(self) -> None:
        """Close the clients and the loop of this sequence."""
        self.run(self.http.aclose())
        self.run(self.redis.aclose())
        self.loop.close()

    def pick(self, index: int, likely: Callable[[Run], bool] | None = None) -> Run:
        """An execution chosen by an index that shrinks towards the first one; among those
        that are `likely` when there are any, three times in four."""
        if likely is not None and index % 4:
            favoured = [r for r in self.runs if likely(r)]
            if favoured:
                return favoured[index % len(favoured)]
        return self.runs[index % len(self.runs)]

    def worker_id(self, worker: int) -> str:
        """The id the worker's current process leases and holds under."""
        return f"wrk_m{worker}g{self.generation.get(worker, 0)}"

    @property
    def iso(self) -> str:
        """The fake clock as the scripts' `now_iso`."""
        return rfc3339(self.now)

    def _stepped(self, outcome: str = "") -> None:
        self.steps += 1
        self.backend.steps += 1
        self._snap = None
        if outcome:
            self.backend.outcomes[outcome] += 1
        if self.replaying:
            self.check()

    def snapshot(self) -> Snapshot:
        """Redis as it stands after the last step (read once per step)."""
        if self._snap is None or self._snap[0] != self.steps:
            ids = [r.id for r in self.runs]
            nodes = [NODE, OTHER_NODE]
            self._snap = (self.steps, self.run(read(self.redis, self.keys, ids, nodes)))
        return self._snap[1]

    def _check_finish(
        self,
        r: Run,
        got: Any,
        status: str,
        error: str,
        result: str,
        attempt: str | None = None,
    ) -> None:
        digest = (status, error, result)
        if r.expired:
            expected = Outcome.MISSING
        elif r.terminal:
            # A `cancelled` report of an execution already stopped is its agent saying so.
            stopped = status == "cancelled" and r.status in ("cancelled", "timeout")
            expected = Outcome.NOOP if r.digest == digest or stopped else Outcome.CONFLICT
        elif attempt is not None and (
            attempt != str(r.attempt) or r.status != "running" or r.phase != "invoking"
        ):
            # An attempt handed back, or parked for its callback, is no longer its worker's.
            expected = Outcome.STALE
        else:
            expected = Outcome.OK
            r.doc = self.run(self.store.get_doc(r.id))
            self._finished(r, status, error, result)
        assert got.outcome is expected, (got, expected, r)
        if expected in (Outcome.OK, Outcome.NOOP):
            # Sent back only to a caller that asked for it (the cancel here, as the API's).
            assert got.doc in (None, r.doc), "a repeated identical update changed the document"
        self._stepped(f"finish: {expected}")

    def _finished(self, r: Run, status: str, error: str, result: str) -> None:
        r.status, r.digest, r.phase, r.in_deadlines = status, (status, error, result), None, False
        r.finished_ms = self.now
        r.events.append(status)
        self.holders.pop(r.id, None)
        if r.webhook:
            r.delivery = Delivery()
            self.queued[delivery_job_id(r.id)] = self.now
        if status in ("cancelled", "timeout") and r.started:  # the agent is told (no children)
            self.queued[tell_agent_job_id(r.id)] = self.now

    def _sweep(self) -> None:
        """Runner.sweep at the fake clock: overdue executions time out, expired ones' deadline
        entries are dropped."""
        due = [r for r in self.runs if r.in_deadlines and r.deadline_ms <= self.now]
        with mock.patch("agentfield_arq.core.runner.now_ms", return_value=self.now):
            changed = self.run(self.runner.sweep())
        expected = 0
        for r in due:
            r.in_deadlines = False
            if not r.expired:
                expected += 1
                self._finished(r, "timeout", DEADLINE_ERROR, "")
                r.doc = self.run(self.store.get_doc(r.id))
        assert changed == expected, (changed, expected)
        self.backend.outcomes[f"sweep: {'some' if expected else 'none'} timed out"] += 1

    def _end_run(self, worker: int, r: Run) -> RunEnd | None:
        """What a worker's step (finish.lua, await_callback.lua) ends with it: the run job it
        claimed leaves the queue with its record and lock, and the slot it holds of the
        execution's node, if any, is freed (`_free_slot`). None once its run job has ended."""
        job = self.job_of.pop(worker, None)
        if job is None:
            return None
        self.queued.pop(job, None)
        self.locks.discard(job)
        self.dead_jobs.discard(job)
        if self.slot_of.get(worker) != (r.node, r.id):
            return RunEnd(job_id=job)
        del self.slot_of[worker]
        self._free_slot(r.node, r.id)
        return RunEnd(job_id=job, node_id=r.node)

    def _free_slot(self, node: str, execution_id: str) -> str | None:
        """A call's slot is freed and the oldest waiter whose job is deferred is made due now
        (returned); waiters whose job is gone leave the list."""
        self.held.get(node, {}).pop(execution_id, None)
        waiting = self.waiting.get(node, {})
        for waiter, _ in sorted(waiting.items(), key=lambda item: (item[1], item[0]))[:WAKE_SCAN]:
            due = self.queued.get(waiter)
            if due is None:
                del waiting[waiter]
            elif due > self.now:
                self.queued[waiter] = self.now
                del waiting[waiter]
                return waiter
        return None

    def _expire_slot_keys(self) -> None:
        """Redis drops a node's slot set or waiting list a lease after its last renewal."""
        for key, at in list(self.key_expiry.items()):
            if self.now >= at:
                self.run(self.redis.delete(key))
                del self.key_expiry[key]
                node = key.rpartition(":")[2]
                if key == self.keys.node_slots(node):
                    self.held.pop(node, None)
                else:
                    self.waiting.pop(node, None)

    def _expire(self, r: Run) -> None:
        """Redis drops a record at its TTL, with every key that expires with it (that each has
        a TTL is `ttls_are_set_on_everything_that_must_expire`'s business)."""
        k = self.keys
        jobs = (delivery_job_id(r.id), tell_agent_job_id(r.id))  # records kept the retention
        self.run(
            self.redis.delete(
                k.execution(r.id),
                k.status_doc(r.id),
                k.webhook(r.id),
                k.webhook_events(r.id),
                k.webhook_view(r.id),
                k.history(r.id),
                *map(k.arq_job, jobs),
            )
        )
        r.expired = True
        self.dead_jobs.update(job for job in jobs if job in self.queued)
        self.backend.outcomes["expired"] += 1


async def _no_agent_call(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the model calls no agent: {request.url}")
