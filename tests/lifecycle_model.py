"""The execution and delivery lifecycle as a hypothesis state machine over the real Lua scripts.

Each rule is one thing that can happen in production: the API creates or cancels an execution,
one of two workers claims, parks (202) or settles an attempt, a worker crashes mid-attempt, a
late agent calls back, the sweep times out overdue executions, one of two delivery workers
begins or records a webhook attempt (or crashes), a caller redrives the webhook, arq finishes a
job or holds its in-progress lock, Redis expires a record, the clock moves. Each rule calls the
same store/outbox/runner methods that production calls, with the scripts' `now` arguments taken
from a fake clock, predicts the script's answer from a small pure-Python model, and asserts it.
After every step each guarantee is checked by one invariant against a snapshot of Redis read in
one pipeline.

The same machine runs in two tiers (tests/unit/test_model.py over fakeredis,
tests/integration/test_model.py over the session's valkey); a `Backend` is the only difference.

Adding a transition (a new script, or a new branch of one): add its state to `Run`/`Delivery`,
one `@rule` that calls the production method and asserts the model's prediction, and, for a new
guarantee, one `@invariant` reading the `Snapshot` (add the keys it needs to `_snapshot`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from unittest import mock

import httpx
import msgspec
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import delivery_job_id
from agentfield_arq.core.execution import CANCELLED_ERROR
from agentfield_arq.core.keys import NON_TERMINAL_GRACE_S, WEBHOOK_EVENTS_MAX, Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Attempt, Outbox
from agentfield_arq.core.outbox import Outcome as Delivered
from agentfield_arq.core.runner import Runner
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, NewExecution, Outcome
from agentfield_arq.kernel.codec import rfc3339, text
from agentfield_arq.kernel.errors import (
    ExecutionNotFound,
    ExecutionNotTerminal,
    NodeNotFound,
    QueueFull,
    TargetNotFound,
    WebhookBusy,
    WebhookNotFound,
)
from agentfield_arq.kernel.models import Execution, NodeRegistration, TargetSpec
from agentfield_arq.kernel.status import TERMINAL_STATUSES, TargetKind

T = TypeVar("T")

NODE = "mnode"
OTHER_NODE = "mother"
NAME = "think"
OTHER_NAME = "absent"
T0_MS = 1_700_000_000_000
DEADLINE_S = 10.0
MAX_RUNS = 4
WORKERS = 2
COURIERS = 2
# What agents answer: results and errors from small sets, so that identical repeats happen.
RESULTS = (b"null", b'{"answer":42}', b"[1,2]")
ERRORS = ("agent answered 400: bad input", "agent reported failed")
LOCK_TTL_MS = 60_000
RETENTION_S = 7200
# Below the most jobs the machine can queue (a run job and a delivery per execution), so that
# `queue_full` is reached.
MAX_QUEUED = 4
# A pause longer than any deadline plus the grace period of a non-terminal record.
PAUSE_MS = (NON_TERMINAL_GRACE_S + int(DEADLINE_S)) * 1000
PAUSE_STEP = 16

_doc_decoder = msgspec.json.Decoder(Execution[msgspec.Raw], strict=True)


def model_settings(base: Settings) -> Settings:
    """The tier's settings with a short deadline and a short retry schedule (3 attempts a
    round), so that short sequences reach timeouts and dead deliveries."""
    return msgspec.structs.replace(
        base,
        execution_deadline_s=DEADLINE_S,
        retention_s=RETENTION_S,
        max_queued=MAX_QUEUED,
        webhook_retry_schedule_s="1,2",
    )


class Backend:
    """How a tier gives the machine a Redis: `open` returns an empty database, in the loop
    that calls it; `close` releases it."""

    def __init__(self, open_: Callable[[], Awaitable[Redis]], settings: Settings) -> None:
        self.open = open_
        self.settings = model_settings(settings)
        self.sequences = 0
        self.steps = 0
        self.outcomes: collections.Counter[str] = collections.Counter()


@dataclass
class Delivery:
    """The model of one webhook delivery (webhook_begin/record/redrive.lua)."""

    state: str = "pending"
    attempts: int = 0
    round: int = 0
    records: int = 0
    delivered: bool = False


@dataclass
class Run:
    """The model of one execution (create/claim/await_callback/progress/finish.lua)."""

    id: str
    kind: str
    webhook: bool
    deadline_ms: int
    status: str = "queued"
    attempt: int = 0
    phase: str | None = None
    started: bool = False
    digest: tuple[str, str, str] | None = None
    doc: bytes | None = None
    events: list[str] = field(default_factory=lambda: ["queued"])
    in_deadlines: bool = True
    expired: bool = False
    delivery: Delivery | None = None

    finished_ms: int | None = None

    @property
    def terminal(self) -> bool:
        """Whether the model holds it terminal."""
        return self.status in TERMINAL_STATUSES

    @property
    def expires_ms(self) -> int:
        """When Redis drops the record: the retention after it ended, else the grace period
        after its deadline."""
        if self.finished_ms is not None:
            return self.finished_ms + RETENTION_S * 1000
        return self.deadline_ms + NON_TERMINAL_GRACE_S * 1000


@dataclass
class Snapshot:
    """What Redis holds after a step, read in one pipeline."""

    hashes: dict[str, dict[str, str]]
    docs: dict[str, bytes | None]
    views: dict[str, bytes | None]
    webhooks: dict[str, dict[str, str]]
    webhook_events: dict[str, list[bytes]]
    ttls_ms: dict[str, int]
    deadlines: set[str]
    queue: set[str]
    stream: list[dict[str, str]]
    dead: list[str]
    nodes: set[str]


def _now_and_then(machine: LifecycleMachine) -> bool:
    """Node rules are enabled one step in four, so that they do not crowd out the
    executions' (hypothesis draws among the enabled rules evenly)."""
    return machine.steps % 4 == 0


def _live(r: Run) -> bool:
    return not r.expired


def _unfinished(r: Run) -> bool:
    return not r.expired and not r.terminal


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


class LifecycleMachine(RuleBasedStateMachine):
    """Two workers, two delivery workers, a late agent, a caller, the sweep, arq and the clock,
    against the real scripts; see the module docstring."""

    backend: Backend
    replaying = False

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
        self.couriers: dict[int, Attempt] = {}
        self.queued: set[str] = set()
        self.locks: set[str] = set()
        self.dead_jobs: set[str] = set()
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

    def check(self) -> None:
        """Every invariant, as hypothesis runs them after each step (for `replay`)."""
        self.status_document_and_hash_agree_with_the_model()
        self.only_the_current_attempt_is_recorded()
        self.the_deadline_set_holds_exactly_the_unfinished()
        self.nothing_is_queued_without_its_record()
        self.the_stream_tells_each_change_once_in_order()
        self.ttls_are_set_on_everything_that_must_expire()
        self.the_delivery_is_the_models_and_delivered_stays_delivered()
        self.the_node_index_names_every_live_node()

    # ---------------------------------------------------------------- the API

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
            "execution_id": execution_id,
            "run_id": f"run_m{len(self.runs)}",
            "target": f"{node}.{name}",
            "node_id": node,
            "name": name,
            "input": "{}",
            "created_at": self.iso,
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
        if kind is None or len(self.queued) >= self.settings.max_queued:
            before = self.run(self.redis.dbsize())
            with pytest.raises(refusal):
                self.run(self.store.create(new))
            assert self.run(self.redis.dbsize()) == before, "a refused execution wrote keys"
            self._stepped(f"create: {refusal.__name__}")
            return
        assert self.run(self.store.create(new)) == kind
        self.runs.append(Run(id=execution_id, kind=kind, webhook=webhook, deadline_ms=deadline))
        self.queued.add(execution_id)
        self._stepped("create: ok")

    # ---------------------------------------------------------------- nodes

    @precondition(_now_and_then)
    @rule(node=st.sampled_from([NODE, OTHER_NODE]), kind=st.sampled_from(list(TargetKind)))
    def node_registers(self, node: str, kind: TargetKind) -> None:
        """A node (re-)registers, offering NAME as a reasoner or a skill."""
        spec = [TargetSpec(id=NAME)]
        registration = NodeRegistration(
            id=node,
            base_url="http://agent.test",
            reasoners=spec if kind is TargetKind.REASONER else [],
            skills=spec if kind is TargetKind.SKILL else [],
        )
        self.run(self.nodes.register(b"{}", registration))
        self.targets[node] = {NAME: kind.value}
        self.node_ids.add(node)
        self._stepped()

    @precondition(_now_and_then)
    @rule(node=st.sampled_from([NODE, OTHER_NODE]), status=st.sampled_from([None, "stopping"]))
    def node_heartbeats(self, node: str, status: str | None) -> None:
        """A heartbeat refreshes a registered node; an unknown one must register again."""
        try:
            self.run(self.nodes.heartbeat(node, status))
        except NodeNotFound:
            assert node not in self.targets, node
        else:
            assert node in self.targets, node
        self._stepped(f"heartbeat: {node in self.targets}")

    @precondition(lambda self: self.targets and _now_and_then(self))
    @rule(node=st.sampled_from([OTHER_NODE] * 3 + [NODE]))
    def node_goes_silent(self, node: str) -> None:
        """A node stops heartbeating for a week: Redis expires its record and targets (the
        node TTL is not tied to the executions' clock)."""
        self.run(self.redis.delete(self.keys.node(node), self.keys.node_targets(node)))
        self.targets.pop(node, None)
        self._stepped()

    @precondition(_now_and_then)
    @rule()
    def nodes_are_listed(self) -> None:
        """GET nodes lists the live ones and forgets (forget_nodes.lua) the expired ones."""
        listed = self.run(self.nodes.list())
        assert sorted(n["id"] for n in listed) == sorted(self.targets)
        self.node_ids = set(self.targets)
        self._stepped()

    @precondition(lambda self: self.runs)
    @rule(index=st.integers(0, 4 * MAX_RUNS - 1))
    def cancel(self, index: int) -> None:
        """POST cancel: cancelled unless terminal; cancelling a cancelled one is a no-op."""
        r = self.pick(index, _live)
        got = self.run(
            self.store.finish(r.id, "cancelled", self.iso, self.now, error=CANCELLED_ERROR)
        )
        self._check_finish(r, got, "cancelled", CANCELLED_ERROR, "")

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
                    self.queued.add(job)
            elif job in self.locks:
                expected = WebhookBusy
            else:
                d.state, d.round, expected = "pending", 0, "pending"
                self.queued.add(job)
        if isinstance(expected, str):
            answer = self.run(self.outbox.redrive(r.id, self.now))
            assert answer.webhook_status == expected, (answer, expected)
        else:
            with pytest.raises(expected):
                self.run(self.outbox.redrive(r.id, self.now))
        self._stepped(f"redrive: {expected if isinstance(expected, str) else expected.__name__}")

    # ---------------------------------------------------------------- workers

    @precondition(lambda self: self.runs)
    @rule(worker=st.integers(0, WORKERS - 1), index=st.integers(0, 4 * MAX_RUNS - 1))
    def claim(self, worker: int, index: int) -> None:
        """A worker takes the run job (first try, a retry, or after another worker crashed)."""
        rivals = [held for w, (held, _) in self.workers.items() if w != worker]
        # Half the time, the run another worker holds: the race the attempt fence is for.
        r = rivals[0] if rivals and index % 2 else self.pick(index, _unfinished)
        got = self.run(self.store.claim(r.id, self.iso, self.now))
        if r.expired:
            expected = Outcome.MISSING
        elif r.terminal:
            expected = Outcome.TERMINAL
        elif r.phase == "awaiting_callback":
            expected = Outcome.AWAITING
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
        assert got.outcome is expected, (got, expected)
        self._stepped(f"claim: {expected}")

    @precondition(lambda self: self.workers)
    @rule(worker=st.integers(0, WORKERS - 1))
    def agent_accepts(self, worker: int) -> None:
        """The agent answered 202: the attempt parks until the callback or the deadline."""
        r, attempt = self.workers[self._held(worker)]
        ok = (
            not r.expired
            and r.status == "running"
            and str(r.attempt) == attempt
            and r.phase == "invoking"
        )
        assert self.run(self.store.await_callback(r.id, attempt)) is ok
        if ok:
            r.phase = "awaiting_callback"
        self._stepped(f"await_callback: {ok}")

    @precondition(lambda self: self.workers)
    @rule(
        worker=st.integers(0, WORKERS - 1),
        succeeded=st.booleans(),
        answer=st.integers(0, len(RESULTS) - 1),
    )
    def worker_settles(self, worker: int, succeeded: bool, answer: int) -> None:
        """The worker records the agent's answer, fenced by its attempt."""
        r, attempt = self.workers.pop(self._held(worker))
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
            )
        )
        self._check_finish(r, got, status, error, text(result), attempt=attempt)

    @precondition(lambda self: self.workers)
    @rule(worker=st.integers(0, WORKERS - 1))
    def worker_crashes(self, worker: int) -> None:
        """A worker dies mid-attempt: its claim is forgotten, arq hands the job to another."""
        del self.workers[self._held(worker)]
        self._stepped()

    def _held(self, worker: int) -> int:
        """`worker` if it holds a claim, else the one that does."""
        return worker if worker in self.workers else next(iter(self.workers))

    # ---------------------------------------------------------------- the agent

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
        r = self.pick(index, _live)
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
        r = self.pick(index, _live)
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
        assert got.outcome is expected, (got, expected)
        self._stepped(f"progress: {expected}")

    # ---------------------------------------------------------------- the sweep and time

    @rule(step=st.integers(0, PAUSE_STEP), sweep=st.booleans())
    def time_passes(self, step: int, sweep: bool) -> None:
        """The clock moves (by half-seconds, or, rarely, past every deadline and grace period:
        the workers were down), Redis expires what is due, then the sweep may run."""
        self.now += PAUSE_MS if step == PAUSE_STEP else step * 500
        for r in self.runs:
            if not r.expired and self.now >= r.expires_ms:
                self._expire(r)
        if sweep:
            self._sweep()
        self._stepped()

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
                self._finished(r, "timeout", "execution deadline exceeded", "")
                r.doc = self.run(self.store.get_doc(r.id))
        assert changed == expected, (changed, expected)
        self.backend.outcomes[f"sweep: {'some' if expected else 'none'} timed out"] += 1

    def _expire(self, r: Run) -> None:
        """Redis drops a record at its TTL, with every key that expires with it (that each has
        a TTL is `ttls_are_set_on_everything_that_must_expire`'s business)."""
        k = self.keys
        job = delivery_job_id(r.id)
        self.run(
            self.redis.delete(
                k.execution(r.id),
                k.status_doc(r.id),
                k.webhook(r.id),
                k.webhook_events(r.id),
                k.webhook_view(r.id),
                k.arq_job(job),
            )
        )
        r.expired = True
        if job in self.queued:
            self.dead_jobs.add(job)
        self.backend.outcomes["expired"] += 1

    # ---------------------------------------------------------------- arq

    @precondition(lambda self: self.queued)
    @rule(index=st.integers(0, 2 * MAX_RUNS - 1))
    def arq_finishes_a_job(self, index: int) -> None:
        """arq's finish_job: the job leaves the queue with its record and its lock."""
        job = sorted(self.queued)[index % len(self.queued)]
        self.run(self.redis.delete(self.keys.arq_job(job), self.keys.arq_in_progress(job)))
        self.run(self.redis.zrem(self.keys.queue, job))
        self.queued.discard(job)
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

    # ---------------------------------------------------------------- webhook delivery

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

    # ---------------------------------------------------------------- finish, predicted

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
            expected = Outcome.NOOP if r.digest == digest else Outcome.CONFLICT
        elif attempt is not None and attempt != str(r.attempt):
            expected = Outcome.STALE
        else:
            expected = Outcome.OK
            r.doc = got.doc
            self._finished(r, status, error, result)
        assert got.outcome is expected, (got, expected, r)
        if expected is Outcome.NOOP:
            assert got.doc == r.doc, "a repeated identical update changed the document"
        self._stepped(f"finish: {expected}")

    def _finished(self, r: Run, status: str, error: str, result: str) -> None:
        r.status, r.digest, r.phase, r.in_deadlines = status, (status, error, result), None, False
        r.finished_ms = self.now
        r.events.append(status)
        if r.webhook:
            r.delivery = Delivery()
            self.queued.add(delivery_job_id(r.id))

    # ---------------------------------------------------------------- invariants

    def snapshot(self) -> Snapshot:
        """Redis as it stands after the last step (read once per step)."""
        if self._snap is None or self._snap[0] != self.steps:
            self._snap = (self.steps, self.run(self._snapshot()))
        return self._snap[1]

    async def _snapshot(self) -> Snapshot:
        k = self.keys
        ids = [r.id for r in self.runs]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.keys("*")
            pipe.zrange(k.deadlines, 0, -1)
            pipe.zrange(k.queue, 0, -1)
            pipe.xrange(k.events)
            pipe.zrange(k.dead_webhooks, 0, -1)
            pipe.smembers(k.nodes)
            for i in ids:
                pipe.hgetall(k.execution(i))
                pipe.get(k.status_doc(i))
                pipe.get(k.webhook_view(i))
                pipe.hgetall(k.webhook(i))
                pipe.lrange(k.webhook_events(i), 0, -1)
            replies: list[Any] = await pipe.execute()
        names, deadlines, queue, stream, dead, nodes, *per_run = replies
        keys = sorted(text(name) for name in names)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(key)
            ttls: list[int] = await pipe.execute()
        snap = Snapshot(
            hashes={}, docs={}, views={}, webhooks={}, webhook_events={},
            ttls_ms=dict(zip(keys, ttls, strict=True)),
            deadlines={text(m) for m in deadlines},
            queue={text(m) for m in queue},
            stream=[_decoded(fields) for _id, fields in stream],
            dead=[text(m) for m in dead],
            nodes={text(m) for m in nodes},
        )  # fmt: skip
        it = iter(per_run)
        for i in ids:
            snap.hashes[i] = _decoded(next(it))
            snap.docs[i] = next(it)
            snap.views[i] = next(it)
            snap.webhooks[i] = _decoded(next(it))
            snap.webhook_events[i] = next(it)
        return snap

    @invariant()
    def status_document_and_hash_agree_with_the_model(self) -> None:
        """Exactly one status, the model's, in hash and document; a terminal document is
        frozen; each decodes strictly into the wire model, with its webhook view."""
        snap = self.snapshot()
        for r in self.runs:
            h, doc = snap.hashes[r.id], snap.docs[r.id]
            if r.expired:
                assert not h, r
                assert doc is None, r
                continue
            assert h["status"] == r.status, (h, r)
            assert doc is not None
            view = snap.views[r.id]
            parsed = _doc_decoder.decode(doc if not view else doc[:-1] + b"," + view[1:])
            assert parsed.status == r.status
            assert (parsed.execution_id, parsed.run_id) == (h["execution_id"], h["run_id"])
            assert parsed.webhook_registered is r.webhook
            assert parsed.type == r.kind
            assert (parsed.started_at is not None) == r.started, (parsed, r)
            if r.terminal:
                assert doc == r.doc, "a terminal document changed"
                assert parsed.error == (r.digest[1] if r.digest and r.digest[1] else None)
                assert (parsed.result is not msgspec.UNSET) == (r.status == "succeeded")

    @invariant()
    def only_the_current_attempt_is_recorded(self) -> None:
        """The attempt count and phase are the model's: only claims move them."""
        snap = self.snapshot()
        for r in self.runs:
            if r.expired:
                continue
            h = snap.hashes[r.id]
            assert h["attempt"] == str(r.attempt), (h, r)
            assert h.get("phase") == r.phase, (h, r)

    @invariant()
    def the_deadline_set_holds_exactly_the_unfinished(self) -> None:
        """Every non-terminal execution has its deadline entry, no terminal one has."""
        snap = self.snapshot()
        assert snap.deadlines == {r.id for r in self.runs if r.in_deadlines}
        for r in self.runs:
            if not r.expired:
                assert r.in_deadlines is not r.terminal, r

    @invariant()
    def nothing_is_queued_without_its_record(self) -> None:
        """The queue is the model's, and every job in it has its arq record (unless Redis
        expired the record with its execution, which arq then drops)."""
        snap = self.snapshot()
        assert snap.queue == self.queued, (snap.queue, self.queued)
        for job in snap.queue:
            assert self.keys.arq_job(job) in snap.ttls_ms or job in self.dead_jobs, job

    @invariant()
    def the_stream_tells_each_change_once_in_order(self) -> None:
        """One lifecycle entry per status change, in order; a terminal entry that queued a
        delivery says so (it wakes the workers)."""
        snap = self.snapshot()
        for r in self.runs:
            mine = [e for e in snap.stream if e["execution_id"] == r.id]
            assert [e["status"] for e in mine] == r.events, (mine, r.events)
            for e in mine:
                assert ("job" in e) == (e["status"] in TERMINAL_STATUSES and r.webhook), e

    @invariant()
    def ttls_are_set_on_everything_that_must_expire(self) -> None:
        """Every key but the shared indexes and streams expires (records, documents, delivery
        keys, job records, locks, nodes); a terminal record within the retention."""
        snap = self.snapshot()
        k = self.keys
        shared = {k.queue, k.deadlines, k.events, k.nodes, k.dead_webhooks}
        for key, ttl in snap.ttls_ms.items():
            assert key in shared or ttl > 0, f"{key} never expires"
        for r in self.runs:
            if r.terminal and not r.expired:
                assert snap.ttls_ms[k.execution(r.id)] <= self.settings.retention_s * 1000, r

    @invariant()
    def the_delivery_is_the_models_and_delivered_stays_delivered(self) -> None:
        """A delivery exists exactly for terminal executions with a webhook; its state, counts,
        records, view and dead-index entry are the model's; attempts never go back and a
        delivered one keeps its `delivered_at` through redrives."""
        snap = self.snapshot()
        for r in self.runs:
            w, d = snap.webhooks[r.id], r.delivery
            if r.expired or d is None:
                assert not w, (w, r)
                continue
            assert w["state"] == d.state, (w, d)
            assert (int(w["attempts"]), int(w["round_attempts"])) == (d.attempts, d.round)
            assert ("delivered_at" in w) == d.delivered, (w, d)
            assert len(snap.webhook_events[r.id]) == min(d.records, WEBHOOK_EVENTS_MAX)
            view = msgspec.json.decode(snap.views[r.id] or b"{}")
            assert view["webhook_status"] == d.state
            member = w.get("dead_member")
            assert (member is not None) == (d.state == "failed"), w
            if member is not None:
                assert member in snap.dead

    @invariant()
    def the_node_index_names_every_live_node(self) -> None:
        """The registry's set holds every live node, and an expired one only until a listing
        forgets it."""
        snap = self.snapshot()
        assert snap.nodes == self.node_ids, (snap.nodes, self.node_ids)
        assert set(self.targets) <= snap.nodes


async def _no_agent_call(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the model calls no agent: {request.url}")


def machine_for(backend: Backend) -> type[LifecycleMachine]:
    """The machine class bound to one tier's backend."""
    return type("Lifecycle", (LifecycleMachine,), {"backend": backend})


# Outcomes the unit tier's derandomized (`ci`) run reaches dozens of times each: asserted
# there, so that a change that stops the machine exploring (a precondition never true, a rule
# that always refuses) fails rather than passes unseen. Rarer ones are pinned by REGRESSIONS.
EXPLORED = frozenset({
    "create: ok", "create: TargetNotFound", "create: QueueFull",
    "claim: ok", "claim: terminal",
    "await_callback: True", "await_callback: False",
    "finish: ok", "finish: noop", "finish: conflict",
    "progress: ok", "progress: conflict",
    "begin: ok", "begin: done failed", "begin: missing",
    "redrive: pending", "redrive: delivering", "redrive: WebhookNotFound",
    "redrive: ExecutionNotTerminal",
    "heartbeat: True", "heartbeat: False",
})  # fmt: skip


def replay(backend: Backend, sequence: Callable[[LifecycleMachine], None]) -> None:
    """Run one named sequence on a fresh machine, checking every invariant after each step."""
    machine = type("Replay", (LifecycleMachine,), {"backend": backend, "replaying": True})()
    try:
        machine.check()
        sequence(machine)
    finally:
        machine.teardown()


# ---------------------------------------------------------------------------- examples kept
#
# Sequences hypothesis found (while the model was written, each exposed a wrong prediction of
# the model, not of the scripts) and the corners they pin, replayed in both tiers by name.


def _a_reclaimed_attempt_cannot_be_settled_by_its_first_worker(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.claim(worker=0, index=0)
    m.claim(worker=1, index=0)  # worker 0 looked dead: arq handed the job on, attempt 2
    m.worker_settles(worker=0, succeeded=True, answer=1)  # stale
    m.worker_settles(worker=1, succeeded=False, answer=0)  # ok
    assert m.runs[0].status == "failed"


def _the_sweep_freezes_the_document_of_a_never_started_execution(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.time_passes(step=PAUSE_STEP - 1, sweep=False)
    m.time_passes(step=PAUSE_STEP - 1, sweep=True)
    assert m.runs[0].status == "timeout"
    m.agent_calls_back(index=0, status="succeeded", answer=1, duration_ms=None)  # conflict


def _a_redriven_delivered_webhook_starts_a_new_round(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.agent_calls_back(index=0, status="succeeded", answer=1, duration_ms=7)
    m.delivery_begins(courier=0, index=0)
    m.delivery_records(courier=0, outcome=Delivered.RETRY)
    m.delivery_begins(courier=0, index=0)
    m.delivery_records(courier=0, outcome=Delivered.DELIVERED)
    m.redrive(index=0)  # pending again, delivered_at kept
    m.delivery_begins(courier=1, index=0)  # attempt 2, round 1
    assert m.couriers[1].attempt == 3
    assert m.couriers[1].round_attempt == 1


def _a_redrive_while_arq_holds_the_lock_is_refused(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.cancel(index=0)
    m.delivery_begins(courier=0, index=0)
    m.delivery_records(courier=0, outcome=Delivered.DEAD)
    m.arq_holds_the_delivery_lock(index=0)
    m.redrive(index=0)  # busy
    m.arq_holds_the_delivery_lock(index=0)  # released
    m.redrive(index=0)  # a new round
    assert m.runs[0].delivery is not None
    assert m.runs[0].delivery.state == "pending"


def _a_lost_last_attempt_kills_the_delivery(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.agent_calls_back(index=0, status="failed", answer=0, duration_ms=None)
    for _ in range(m.settings.webhook_max_attempts):
        m.delivery_begins(courier=0, index=0)
        m.delivery_worker_crashes(courier=0)
    m.delivery_begins(courier=1, index=0)  # records the lost last attempt: dead
    assert m.runs[0].delivery is not None
    assert m.runs[0].delivery.state == "failed"


def _an_expired_record_leaves_the_deadline_set_at_the_next_sweep(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.time_passes(step=PAUSE_STEP, sweep=False)  # the record expired before any sweep
    m.time_passes(step=0, sweep=True)
    m.claim(worker=0, index=0)  # missing


def _a_repeated_callback_is_a_noop_whatever_its_duration(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.claim(worker=0, index=0)
    m.agent_accepts(worker=0)
    m.claim(worker=1, index=0)  # awaiting: not claimed again
    m.agent_calls_back(index=0, status="succeeded", answer=2, duration_ms=None)
    m.agent_calls_back(index=0, status="succeeded", answer=2, duration_ms=7)  # noop
    m.agent_calls_back(index=0, status="succeeded", answer=1, duration_ms=None)  # conflict


def _a_full_queue_refuses_without_writing(m: LifecycleMachine) -> None:
    for _ in range(MAX_QUEUED):
        m.create(webhook=False, node=NODE, name=NAME)
    m.create(webhook=False, node=NODE, name=NAME)  # queue_full
    assert len(m.runs) == MAX_QUEUED
    m.node_goes_silent(node=NODE)
    m.nodes_are_listed()  # forgets it
    m.create(webhook=False, node=NODE, name=NAME)  # no node: refused before the queue check


REGRESSIONS: dict[str, Callable[[LifecycleMachine], None]] = {
    f.__name__.lstrip("_"): f
    for f in (
        _a_reclaimed_attempt_cannot_be_settled_by_its_first_worker,
        _the_sweep_freezes_the_document_of_a_never_started_execution,
        _a_redriven_delivered_webhook_starts_a_new_round,
        _a_redrive_while_arq_holds_the_lock_is_refused,
        _a_lost_last_attempt_kills_the_delivery,
        _an_expired_record_leaves_the_deadline_set_at_the_next_sweep,
        _a_repeated_callback_is_a_noop_whatever_its_duration,
        _a_full_queue_refuses_without_writing,
    )
}
