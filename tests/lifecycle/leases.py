"""Rules of the worker leases (core/lease.py): a worker renews its lease, and any worker's
reaper hands back, unspent, what a worker whose lease lapsed was holding, and what the reaping
worker itself is recorded as holding but no longer runs (requeue.lua)."""

from __future__ import annotations

from unittest import mock

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from agentfield_arq.core.lease import WorkerLease
from tests.lifecycle.machine import MachineBase
from tests.lifecycle.model import WORKERS


class LeaseRules(MachineBase):
    """A beat and a reap, at the fake clock, as WorkerLease.run takes them in turn."""

    @precondition(lambda self: self.holders or self.workers)
    @rule(worker=st.integers(0, WORKERS - 1))
    def worker_lease_ticks(self, worker: int) -> None:
        """One turn of WorkerLease.run: the worker's lease runs for another `worker_lease_s`,
        then its reaper hands back every execution held by a worker whose lease is not live,
        or held by this worker but not the one it runs now (a claim it moved on from without
        settling, as when a failover lost its settle): to `queued`, under a fresh job id, its
        attempt not spent. It drops the holder entry of an execution that moved on or expired,
        and clears lapsed leases."""
        me = self.worker_id(worker)
        self.leases[me] = self.now + round(self.settings.worker_lease_s * 1000)
        live = {w for w, until in self.leases.items() if until > self.now}
        running = {self.workers[worker][0].id} if worker in self.workers else set()
        expected = 0
        for execution_id, holder in sorted(self.holders.items()):
            mine = holder == me
            if (mine and execution_id in running) or (not mine and holder in live):
                continue
            r = next(r for r in self.runs if r.id == execution_id)
            del self.holders[execution_id]
            if r.expired or r.status != "running":
                continue
            assert r.phase == "invoking", r  # a holder is only ever recorded while invoking
            expected += 1
            r.status, r.phase, r.uncharged = "queued", None, r.uncharged + 1
            r.events.append("queued")
            self.queued.pop(r.job, None)
            self.held.get(r.node, {}).pop(r.id, None)
            r.job = ""  # learnt below
        lease = WorkerLease(self.redis, self.settings, worker_id=me, running=running)
        with (
            mock.patch("agentfield_arq.core.lease.now_ms", return_value=self.now),
            mock.patch("agentfield_arq.core.store.now_ms", return_value=self.now),
        ):
            self.run(lease.beat())
            # A fresh lease object: its first reap scans every holder, as a starting worker's.
            queued = self.run(lease.reap())
        for r in self.runs:
            if not r.job:
                r.job = self.snapshot_job(r.id)
                assert r.job.startswith(f"{r.id}~"), r.job
                self.queued[r.job] = self.now
        for w in [w for w in self.leases if w not in live]:
            del self.leases[w]
        assert queued == expected, (queued, expected)
        self._stepped(f"reap: {'some' if expected else 'none'} handed back")

    def snapshot_job(self, execution_id: str) -> str:
        """The run job id a hand-back gave the execution."""
        return self.run(self.store.fence(execution_id))["job"]
