"""Rules of the execution lifecycle: the API, two workers, a late agent, the sweep and time."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from agentfield_arq.core.execution import CANCELLED_ERROR
from agentfield_arq.core.runner import DEADLINE_ERROR
from agentfield_arq.core.store import NewExecution, Outcome
from agentfield_arq.kernel.codec import text
from agentfield_arq.kernel.errors import (
    QueueFull,
    TargetNotFound,
)
from tests.lifecycle.machine import MachineBase
from tests.lifecycle.model import (
    DEADLINE_S,
    ERRORS,
    MAX_RUNS,
    NAME,
    NODE,
    OTHER_NAME,
    OTHER_NODE,
    PAUSE_MS,
    PAUSE_STEP,
    RESULTS,
    WORKERS,
    Run,
    live,
    unfinished,
)


class ExecutionRules(MachineBase):
    """create, cancel, claim, await_callback, progress and finish, as production calls them."""

    @precondition(lambda self: len(self.runs) < MAX_RUNS)
    @rule(
        webhook=st.booleans(),
        node=st.sampled_from([NODE] * 7 + [OTHER_NODE]),
        name=st.sampled_from([NAME] * 7 + [OTHER_NAME]),
    )
    def create(self, webhook: bool, node: str, name: str) -> None:
        """POST execute: the record, its deadline, its run job and a `queued` entry at once;
        or, for a target not registered or a full queue, nothing at all."""
        execution_id = f"exec_m{len(self.runs)}"
        fields = {
            "run_id": f"run_m{len(self.runs)}",
            "target": f"{node}.{name}",
            "node_id": node,
            "name": name,
            "input": "{}",
            "created_ms": str(self.now),
        }
        if webhook:
            fields.update(webhook_url="https://hooks.test/in", webhook_headers="{}")
        deadline = self.now + int(DEADLINE_S * 1000)
        new = NewExecution(
            execution_id=execution_id,
            node_id=node,
            name=name,
            enqueue_ms=self.now,
            deadline_ms=deadline,
            fields=fields,
        )
        kind = self.targets.get(node, {}).get(name)
        refusal = TargetNotFound if kind is None else QueueFull
        due = sum(1 for at in self.queued.values() if at <= self.now)  # retries wait: not counted
        if kind is None or due >= self.settings.max_queued:
            before = self.run(self.redis.dbsize())
            with pytest.raises(refusal):
                self.run(self.store.create(new))
            assert self.run(self.redis.dbsize()) == before, "a refused execution wrote keys"
            self._stepped(f"create: {refusal.__name__}")
            return
        assert self.run(self.store.create(new)).kind == kind
        self.runs.append(
            Run(id=execution_id, kind=kind, webhook=webhook, deadline_ms=deadline, node=node)
        )
        self.queued[execution_id] = self.now
        self._stepped("create: ok")

    @precondition(lambda self: self.runs)
    @rule(index=st.integers(0, 4 * MAX_RUNS - 1))
    def cancel(self, index: int) -> None:
        """POST cancel: cancelled unless terminal; cancelling a cancelled one is a no-op."""
        r = self.pick(index, live)
        got = self.run(
            self.store.finish(
                r.id, "cancelled", self.iso, self.now, error=CANCELLED_ERROR, want_doc=True
            )
        )
        self._check_finish(r, got, "cancelled", CANCELLED_ERROR, "")

    @precondition(lambda self: self.runs)
    @rule(
        worker=st.integers(0, WORKERS - 1),
        index=st.integers(0, 4 * MAX_RUNS - 1),
        first_job=st.booleans(),
    )
    def claim(self, worker: int, index: int, first_job: bool = False) -> None:
        """A worker takes the run job (first try, a retry, or after another worker crashed),
        recording itself as the holder; sometimes from the execution's first job, which a
        hand-back superseded."""
        rivals = [held for w, (held, _) in self.workers.items() if w != worker]
        # Half the time, the run another worker holds: the race the attempt fence is for.
        r = rivals[0] if rivals and index % 2 else self.pick(index, unfinished)
        job = r.id if first_job else r.job
        me = self.worker_id(worker)
        got = self.run(self.store.claim(r.id, self.iso, self.now, job_id=job, worker_id=me))
        holder = self.holders.get(r.id)
        if r.expired:
            expected = Outcome.MISSING
        elif r.terminal:
            expected = Outcome.TERMINAL
        elif r.phase == "awaiting_callback":
            expected = Outcome.AWAITING
        elif job != r.job:
            expected = Outcome.SUPERSEDED
        elif r.deadline_ms <= self.now:
            expected = Outcome.OVERDUE
        elif holder is not None and self.leases.get(holder, 0) > self.now:
            expected = Outcome.HELD
        else:
            expected = Outcome.OK
            r.attempt += 1
            r.phase = "invoking"
            r.started = True
            if r.status == "queued":
                r.events.append("running")
            r.status = "running"
            assert got.fields["attempt"] == str(r.attempt)
            self.workers[worker] = (r, str(r.attempt))
            self.job_of[worker] = job
            self.holders[r.id] = me
        assert got.outcome is expected, (got, expected)
        self._stepped(f"claim: {expected}")
        if expected is Outcome.OVERDUE:  # the worker ends it without calling the agent
            ended = self.run(
                self.store.finish(
                    r.id, "timeout", self.iso, self.now, error=DEADLINE_ERROR, only_if_overdue=True
                )
            )
            self._check_finish(r, ended, "timeout", DEADLINE_ERROR, "")

    @precondition(lambda self: self.workers)
    @rule(worker=st.integers(0, WORKERS - 1), ends_run=st.booleans())
    def agent_accepts(self, worker: int, ends_run: bool = False) -> None:
        """The agent answered 202: the attempt parks until the callback or the deadline; under
        WakingWorker the same step ends the worker's run job and frees its slot."""
        held = self._held(worker)
        r, attempt = self.workers[held]
        ok = (
            not r.expired
            and r.status == "running"
            and str(r.attempt) == attempt
            and r.phase == "invoking"
        )
        end = self._end_run(held, r) if ends_run else None
        with mock.patch("agentfield_arq.core.store.now_ms", return_value=self.now):
            assert self.run(self.store.await_callback(r.id, attempt, r.node, end)) is ok
        if ok:
            r.phase = "awaiting_callback"
            self.holders.pop(r.id, None)
        self._stepped(f"await_callback: {ok}")

    @precondition(lambda self: self.workers)
    @rule(
        worker=st.integers(0, WORKERS - 1),
        succeeded=st.booleans(),
        answer=st.integers(0, len(RESULTS) - 1),
        ends_run=st.booleans(),
    )
    def worker_settles(
        self, worker: int, succeeded: bool, answer: int, ends_run: bool = False
    ) -> None:
        """The worker records the agent's answer, fenced by its attempt; under WakingWorker
        the same step ends its run job and frees its slot, whatever the step's outcome."""
        held = self._held(worker)
        r, attempt = self.workers.pop(held)
        end = self._end_run(held, r) if ends_run else None
        self.job_of.pop(held, None)
        if succeeded:
            status, error, result = "succeeded", "", RESULTS[answer]
        else:
            status, error, result = "failed", ERRORS[answer % len(ERRORS)], b""
        got = self.run(
            self.store.finish(
                r.id,
                status,
                self.iso,
                self.now,
                error=error or None,
                result=result or None,
                attempt=attempt,
                run_end=end,
            )
        )
        self._check_finish(r, got, status, error, text(result), attempt=attempt)

    @precondition(lambda self: self.workers)
    @rule(worker=st.integers(0, WORKERS - 1))
    def worker_crashes(self, worker: int) -> None:
        """A worker dies mid-attempt: its claim is forgotten, arq hands the job to another; its
        lease lapses in its time, and it comes back as a new process, under a new id."""
        crashed = self._held(worker)
        del self.workers[crashed]
        self.job_of.pop(crashed, None)
        self.generation[crashed] = self.generation.get(crashed, 0) + 1
        self._stepped()

    def _held(self, worker: int) -> int:
        """`worker` if it holds a claim, else the one that does."""
        return worker if worker in self.workers else next(iter(self.workers))

    @precondition(lambda self: self.runs)
    @rule(
        index=st.integers(0, 4 * MAX_RUNS - 1),
        status=st.sampled_from(["succeeded", "failed", "cancelled", "timeout"]),
        answer=st.integers(0, len(RESULTS) - 1),
        duration_ms=st.sampled_from([None, 7]),
    )
    def agent_calls_back(
        self, index: int, status: str, answer: int, duration_ms: int | None
    ) -> None:
        """A terminal callback, unfenced (the agent knows no attempt), as apply_callback sends
        it; possibly late, possibly repeated."""
        r = self.pick(index, live)
        result = RESULTS[answer] if status == "succeeded" else b""
        error = "" if status == "succeeded" else f"agent reported {status}"
        got = self.run(
            self.store.finish(
                r.id,
                status,
                self.iso,
                self.now,
                error=error or None,
                result=result or None,
                duration_ms=duration_ms,
            )
        )
        self._check_finish(r, got, status, error, text(result))

    @precondition(lambda self: self.runs)
    @rule(
        index=st.integers(0, 4 * MAX_RUNS - 1),
        status=st.sampled_from(["queued", "running"]),
        progress=st.sampled_from([None, {"pct": 50}]),
    )
    def agent_reports_progress(
        self, index: int, status: str, progress: dict[str, int] | None
    ) -> None:
        """A non-terminal callback: queued -> running, running stays running."""
        r = self.pick(index, live)
        got = self.run(self.store.progress(r.id, status, self.iso, self.now, progress))
        if r.expired:
            expected = Outcome.MISSING
        elif r.terminal or (status == "queued" and r.status != "queued"):
            expected = Outcome.CONFLICT
        else:
            expected = Outcome.OK
            if status == "running" and r.status == "queued":
                r.status, r.started = "running", True
                r.events.append("running")
            if status == "running" and progress is not None:
                r.events.append("progress")  # a report's own entry (progress.lua)
        assert got.outcome is expected, (got, expected)
        self._stepped(f"progress: {expected}")

    @rule(step=st.integers(0, PAUSE_STEP), sweep=st.booleans())
    def time_passes(self, step: int, sweep: bool) -> None:
        """The clock moves (by half-seconds, or, rarely, past every deadline and grace period:
        the workers were down), Redis expires what is due, then the sweep may run."""
        self.now += PAUSE_MS if step == PAUSE_STEP else step * 500
        for r in self.runs:
            if not r.expired and self.now >= r.expires_ms:
                self._expire(r)
        self._expire_slot_keys()
        if sweep:
            self._sweep()
        self._stepped()
