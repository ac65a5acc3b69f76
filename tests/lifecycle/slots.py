"""Rules of the per-node call slots (node_slot.lua, node_slot_free.lua) and of arq's deferral
of a run job, which a freed slot may bring forward."""

from __future__ import annotations

from unittest import mock

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from agentfield_arq.core.slots import WAIT_BASE_S
from tests.lifecycle.machine import MachineBase
from tests.lifecycle.model import MAX_RUNS, WORKERS, unfinished


class SlotRules(MachineBase):
    """A worker takes its node's slot before claiming, and gives it back after the call."""

    @precondition(lambda self: self.runs)
    @rule(worker=st.integers(0, WORKERS - 1), index=st.integers(0, 4 * MAX_RUNS - 1))
    def worker_takes_a_slot(self, worker: int, index: int) -> None:
        """A slot of the execution's node; at the cap, a deferral and a place in the waiting
        list (by its run job id); none for an execution that is gone or has ended."""
        r = self.pick(index, unfinished)
        got = self.run(self.slots.take(r.id, self.now, r.job))
        k, node = self.keys, r.node
        outcome = "none"
        if not r.expired and r.terminal:
            self.waiting.get(node, {}).pop(r.job, None)
        elif not r.expired:
            held = self.held.setdefault(node, {})
            for other in [e for e, lapse in held.items() if lapse <= self.now]:
                del held[other]
            if r.id in held or len(held) < self.settings.node_in_flight_cap:
                held[r.id] = self.now + self.slots.lease_ms
                self.key_expiry[k.node_slots(node)] = self.now + self.slots.lease_ms
                self.waiting.get(node, {}).pop(r.job, None)
                self.slot_of[worker] = (node, r.id)
                outcome = "taken"
            else:
                self.waiting.setdefault(node, {}).setdefault(r.job, self.now)
                self.key_expiry[k.node_waiting(node)] = self.now + self.slots.lease_ms
                r.deferrals += 1
                outcome = "wait"
        if outcome == "none":
            assert got is None, got
        else:
            assert got is not None
            assert got.taken is (outcome == "taken"), (got, outcome)
            assert got.cap == self.settings.node_in_flight_cap
            if outcome == "wait":  # backoff_s of the deferrals: jittered over its upper half
                ceiling = min(self.settings.node_wait_max_s, WAIT_BASE_S * 2 ** (r.deferrals - 1))
                assert ceiling / 2 <= got.wait_s <= ceiling, (got, r.deferrals)
        self._stepped(f"slot: {outcome}")

    @precondition(lambda self: self.slot_of)
    @rule(worker=st.integers(0, WORKERS - 1))
    def worker_gives_a_slot_back(self, worker: int) -> None:
        """The call ended: the slot is freed and the oldest waiter whose job is deferred is
        made due now; waiters whose job is gone leave the list."""
        node, execution_id = self.slot_of.pop(
            worker if worker in self.slot_of else next(iter(self.slot_of))
        )
        with mock.patch("agentfield_arq.core.slots.now_ms", return_value=self.now):
            woken = self.run(self.slots.give_back(node, execution_id))
        expected = self._free_slot(node, execution_id)
        assert woken == expected, (woken, expected)
        self._stepped(f"slot freed: {'woke' if expected else 'none woken'}")

    @precondition(lambda self: any(not job.startswith("whk_") for job in self.queued))
    @rule(index=st.integers(0, 2 * MAX_RUNS - 1), step=st.integers(1, 20))
    def arq_defers_a_run_job(self, index: int, step: int) -> None:
        """arq puts a run job back for later (a Retry's defer), as a deferral at the cap does."""
        jobs = sorted(job for job in self.queued if not job.startswith("whk_"))
        job = jobs[index % len(jobs)]
        self.queued[job] = self.now + step * 500
        self.run(self.redis.zadd(self.keys.queue, {job: self.queued[job]}))
        self._stepped()
