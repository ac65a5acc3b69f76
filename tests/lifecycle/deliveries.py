"""Rules of webhook deliveries and of arq around them: begin, record, redrive, crashes, locks."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from agentfield_arq.core.arq_bridge import delivery_job_id
from agentfield_arq.core.outbox import Attempt
from agentfield_arq.core.outbox import Outcome as Delivered
from agentfield_arq.kernel.errors import (
    ExecutionNotFound,
    ExecutionNotTerminal,
    WebhookBusy,
    WebhookNotFound,
)
from tests.lifecycle.machine import MachineBase
from tests.lifecycle.model import (
    COURIERS,
    LOCK_TTL_MS,
    MAX_RUNS,
)


class DeliveryRules(MachineBase):
    """webhook_begin/record/redrive as the delivery jobs and the API call them, and arq's own
    steps (finishing a job, holding its in-progress lock)."""

    @precondition(lambda self: self.runs)
    @rule(index=st.integers(0, 4 * MAX_RUNS - 1))
    def redrive(self, index: int) -> None:
        """POST webhook redrive: a new round (delivered/dead), or brought forward (pending)."""
        r = self.pick(index, lambda r: r.delivery is not None and not r.expired)
        job = delivery_job_id(r.id)
        expected: type[Exception] | str
        if r.expired:
            expected = ExecutionNotFound
        elif not r.webhook:
            expected = WebhookNotFound
        elif not r.terminal:
            expected = ExecutionNotTerminal
        else:
            d = r.delivery
            assert d is not None
            expected = d.state
            if d.state in ("pending", "delivering"):
                if job not in self.locks:
                    self.queued[job] = self.now
            elif job in self.locks:
                expected = WebhookBusy
            else:
                d.state, d.round, expected = "pending", 0, "pending"
                self.queued[job] = self.now
        if isinstance(expected, str):
            answer = self.run(self.outbox.redrive(r.id, self.now))
            assert answer.webhook_status == expected, (answer, expected)
        else:
            with pytest.raises(expected):
                self.run(self.outbox.redrive(r.id, self.now))
        self._stepped(f"redrive: {expected if isinstance(expected, str) else expected.__name__}")

    @precondition(lambda self: self.runs)
    @rule(courier=st.integers(0, COURIERS - 1), index=st.integers(0, 4 * MAX_RUNS - 1))
    def delivery_begins(self, courier: int, index: int) -> None:
        """A delivery job starts an attempt; finding one in flight, it records it as lost."""
        r = self.pick(index, lambda r: r.delivery is not None and not r.expired)
        got = self.run(self.outbox.begin(r.id, self.now))
        d = r.delivery
        expected: str | int
        if r.expired or d is None:
            expected = "missing"
        elif d.state in ("delivered", "failed"):
            expected = f"done {d.state}"
        else:
            expected = d.attempts + 1
            if d.state == "delivering":
                d.records += 1
                if d.round >= self.settings.webhook_max_attempts:
                    d.state = "failed"
                    expected = "done failed"
            if d.state != "failed":
                d.state, d.attempts, d.round = "delivering", d.attempts + 1, d.round + 1
        if isinstance(got, Attempt):
            assert got.attempt == expected, (got, expected)
            assert got.doc == r.doc
            self.couriers[courier] = got
        else:
            assert got == expected, (got, expected)
        self._stepped(f"begin: {'ok' if isinstance(got, Attempt) else got}")

    @precondition(lambda self: self.couriers)
    @rule(
        courier=st.integers(0, COURIERS - 1),
        outcome=st.sampled_from(list(Delivered)),
    )
    def delivery_records(self, courier: int, outcome: Delivered) -> None:
        """The attempt's outcome, fenced by its attempt number."""
        attempt = self.couriers.pop(courier, None) or self.couriers.pop(next(iter(self.couriers)))
        r = next(r for r in self.runs if r.id == attempt.execution_id)
        d = r.delivery
        ok = (
            not r.expired
            and d is not None
            and d.state == "delivering"
            and d.attempts == attempt.attempt
        )
        delivered = outcome is Delivered.DELIVERED
        got = self.run(
            self.outbox.record(
                attempt,
                outcome,
                self.now,
                duration_ms=3,
                http_status=200 if delivered else 503,
                error=None if delivered else "receiver answered 503",
                next_attempt_ms=self.now + 1000 if outcome is Delivered.RETRY else None,
            )
        )
        assert got is ok, (got, ok)
        if ok:
            assert d is not None
            d.records += 1
            d.state = {"delivered": "delivered", "retry": "pending", "dead": "failed"}[outcome]
            d.delivered = d.delivered or delivered
        self._stepped(f"record {outcome}: {ok}")

    @precondition(lambda self: self.couriers)
    @rule(courier=st.integers(0, COURIERS - 1))
    def delivery_worker_crashes(self, courier: int) -> None:
        """A delivery worker dies mid-attempt; the next begin records the attempt as lost."""
        self.couriers.pop(courier, None) or self.couriers.pop(next(iter(self.couriers)))
        self._stepped()

    @precondition(lambda self: self.queued)
    @rule(index=st.integers(0, 2 * MAX_RUNS - 1))
    def arq_finishes_a_job(self, index: int) -> None:
        """arq's finish_job: the job leaves the queue with its record and its lock."""
        job = sorted(self.queued)[index % len(self.queued)]
        self.run(self.redis.delete(self.keys.arq_job(job), self.keys.arq_in_progress(job)))
        self.run(self.redis.zrem(self.keys.queue, job))
        self.queued.pop(job, None)
        self.locks.discard(job)
        self.dead_jobs.discard(job)
        self._stepped()

    @precondition(lambda self: any(r.webhook for r in self.runs))
    @rule(index=st.integers(0, MAX_RUNS - 1))
    def arq_holds_the_delivery_lock(self, index: int) -> None:
        """A delivery worker takes (or lets go of) the delivery job's in-progress lock."""
        r = self.pick(index)
        job = delivery_job_id(r.id)
        lock = self.keys.arq_in_progress(job)
        if job in self.locks:
            self.run(self.redis.delete(lock))
            self.locks.discard(job)
        else:
            self.run(self.redis.set(lock, b"1", px=LOCK_TTL_MS))
            self.locks.add(job)
        self._stepped()
