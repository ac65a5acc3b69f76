"""Execution state in Redis: every transition is one Lua script, so races stay consistent.

The hash `exec:{id}` holds the request and scheduling facts; the string `exec:{id}:status` holds
the JSON document the API returns (with the result, which is stored nowhere else). Both are
written by the same script, with the same TTL.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from agentfield_arq.core.arq_bridge import (
    JOB_PAYLOAD_TTL_MS,
    delivery_job_id,
    delivery_job_payload,
    notice_job_id,
    notice_job_payload,
    run_job_id,
    run_job_payload,
    tell_agent_job_id,
    tell_agent_job_payload,
)
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.keys import (
    EXPIRED_FOR_S,
    NON_TERMINAL_GRACE_S,
    NOTES_MAX,
    Keys,
    own_run_id,
    safe_id,
    safe_ids,
)
from agentfield_arq.core.nodes import DISPATCH_FIELDS
from agentfield_arq.core.outbox import webhook_id
from agentfield_arq.core.routing import stamp
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import WAKE_SCAN
from agentfield_arq.core.views import Views
from agentfield_arq.kernel.codec import encode, id_floor, id_ms, new_id, now_ms, text
from agentfield_arq.kernel.errors import (
    IdempotencyKeyReused,
    InvalidTransition,
    KeyQueueFull,
    NodeUnavailable,
    NotReplicated,
    QueueFull,
    TargetNotFound,
)
from agentfield_arq.kernel.status import Status

# A key at its cap of unfinished executions waits at least this long before trying again.
KEY_QUEUE_RETRY_AFTER_S = 5
# What a caller refused for an unavailable node is told to wait before trying again.
NODE_RETRY_AFTER_S = 5


class NewExecution(msgspec.Struct, kw_only=True):
    """Everything `create` writes (the run job's record is built from the id and `enqueue_ms`);
    `fields` become the hash (all values are strings)."""

    execution_id: str
    node_id: str
    name: str
    enqueue_ms: int
    deadline_ms: int
    fields: dict[str, str]
    # The input object as JSON bytes, stored and later sent to the agent as they are (never
    # decoded again); empty when `fields` carries it (a retry copies a stored one).
    input: bytes = b""
    # The submitting key's id, and how many of its executions may be unfinished (0: no cap).
    owner: str = ""
    max_active: int = 0
    # Indexed under its owner, for the owner's listing (keys other than admins', who list all).
    owner_listed: bool = False
    # Stored beside the hash, not in it (keys.webhook_secret).
    webhook_secret: str = ""
    # With an Idempotency-Key: the digest of its key (names the record) and of the request.
    idempotency_key: str | None = None
    request_digest: str = ""

    # Queue even when the node has been silent longer than its lease (else NodeUnavailable).
    queue_if_unavailable: bool = False


class Created(msgspec.Struct, kw_only=True):
    """What `create` did: the target's kind, or the id of the execution an Idempotency-Key
    already made for the same request (`replayed_id`; nothing was written)."""

    kind: str = ""
    replayed_id: str | None = None


class Outcome(enum.StrEnum):
    """What a transition script reports."""

    OK = "ok"
    NOOP = "noop"
    MISSING = "missing"
    CONFLICT = "conflict"
    STALE = "stale"
    NOT_DUE = "not_due"
    TERMINAL = "terminal"
    AWAITING = "awaiting"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    HELD = "held"
    OVERDUE = "overdue"


class Transition(msgspec.Struct, kw_only=True):
    """The result of a transition: its outcome, the new doc (when ok/noop, and asked for), the
    current status."""

    outcome: Outcome
    doc: bytes | None = None
    status: str | None = None


class Claim(msgspec.Struct, kw_only=True):
    """A worker's claim on an execution; `fields` is the hash as it stands after the claim,
    but for `input`, the JSON bytes to send to the agent as they were stored."""

    outcome: Outcome
    fields: dict[str, str] = {}
    input: bytes = b""
    # The node's `nodes.DISPATCH_FIELDS`, read in the same step (None where unset).
    node: list[bytes | None] = []
    status: str | None = None


class HandBack(msgspec.Struct, kw_only=True, frozen=True):
    """How `requeue` gives an execution back: after `delay_s`, fenced on its `phase` (and on
    the `holder` worker, unless empty, and on that worker's lease having lapsed when
    `lapsed_only`), spending the attempt or not (`charged`), and why."""

    reason: str
    delay_s: float = 0.0
    charged: bool = False
    phase: str = "invoking"
    holder: str = ""
    lapsed_only: bool = False


class RunEnd(msgspec.Struct, kw_only=True, frozen=True):
    """What a worker's settle of its own run (finish.lua), or its record of an agent's 202
    (await_callback.lua), ends in the same step: its arq run job `job_id` (record, lock, try
    count and queue entry, which arq's `finish_job` would delete in a round trip of its own),
    and the call slot it holds of node `node_id` ('' none: slots.py's give-back, also a round
    trip of its own)."""

    job_id: str
    node_id: str = ""


class ExecutionStore:
    """Reads and atomic writes of executions."""

    def __init__(self, redis: Redis, settings: Settings, shard: str = "") -> None:
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        # The shard code that new execution ids name (core/routing.py); '' when not routed.
        self.shard = shard
        self._create = load_script(redis, "create")
        self._claim = load_script(redis, "claim")
        self._await_callback = load_script(redis, "await_callback")
        self._requeue = load_script(redis, "requeue")
        self._forget_holder = load_script(redis, "forget_holder")
        self._progress = load_script(redis, "progress")
        self._finish = load_script(redis, "finish")
        self._views = Views(redis, self.keys, settings)
        self._add_note = load_script(redis, "add_note")
        self._note = load_script(redis, "note")

    def new_execution_id(self, ms: int | None = None) -> str:
        """A fresh execution id (made at `ms`, else now) naming this store's shard."""
        return stamp(new_id("exec", ms), self.shard)

    async def create(self, new: NewExecution) -> Created:
        """Write the execution and enqueue its job atomically (see create.lua)."""
        k = self.keys
        ttl_s = self._record_ttl_s
        args: list[Any] = [
            new.name,
            new.execution_id,
            new.enqueue_ms,
            new.deadline_ms,
            ttl_s,
            run_job_payload(new.execution_id, new.enqueue_ms),
            JOB_PAYLOAD_TTL_MS,
            self.settings.stream_maxlen,
            self.settings.max_queued,
            new.max_active,
            new.webhook_secret,
            # It outlives the record by at most the retention (the record's TTL is shortened
            # to the retention when it ends).
            ttl_s + self.settings.retention_s,
            "" if new.queue_if_unavailable else round(self.settings.node_lease_s * 1000),
            *self._index_bounds(new.enqueue_ms),
            new.request_digest,
            self.settings.idempotency_ttl_s,
        ]
        # A child's keys come last (create.lua): an id that cannot be an execution's names none.
        parent = new.fields.get("parent_execution_id")
        if parent is not None and not safe_id(parent):
            parent = None
        joined = self._joined(new, parent)
        args.append("".join(how for _, how in joined))
        for field, value in new.fields.items():
            args += [field, value]
        if new.input:
            args += ["input", new.input]
        keys = [
            k.node_targets(new.node_id),
            k.execution(new.execution_id),
            k.status_doc(new.execution_id),
            k.deadlines,
            k.queue,
            k.arq_job(new.execution_id),
            k.events,
            k.key_active(new.owner),
            k.webhook_secret(new.execution_id),
            k.node(new.node_id),
            k.idempotency(new.idempotency_key or ""),
            k.stats_executions,
            k.history(new.execution_id),
            *(index for index, _ in joined),
        ]
        if parent is not None:
            keys += [k.execution(parent), k.children(parent)]
        reply = await self._durable(self._create, keys, args)
        state = text(reply[0])
        if state == "replayed":
            return Created(replayed_id=text(reply[1]))
        if state == "idempotency_key_reused":
            raise IdempotencyKeyReused(
                "header Idempotency-Key: already used for another request (another target, "
                "body or header) within its lifetime"
            )
        if state == "no_node":
            raise TargetNotFound(f"node '{new.node_id}' is not registered")
        if state == "no_name":
            raise TargetNotFound(f"node '{new.node_id}' has no reasoner or skill '{new.name}'")
        if state == "parent_cancelled":
            raise InvalidTransition(
                f"parent execution '{parent}' is cancelled; its run takes no new children",
                status="cancelled",
            )
        if state == "node_unavailable":
            raise NodeUnavailable(
                f"node '{new.node_id}' has not been heard from for over "
                f"{self.settings.node_lease_s:g}s; retry later, or queue anyway with "
                '"queue_if_unavailable": true',
                retry_after_s=NODE_RETRY_AFTER_S,
            )
        if state == "queue_full":
            raise QueueFull(
                f"{self.settings.max_queued} jobs already wait for a worker (max_queued); "
                "retry later",
                retry_after_s=self.settings.queue_retry_after_s,
            )
        if state == "key_queue_full":
            raise KeyQueueFull(
                f"this key already has {new.max_active} executions not yet ended; retry once "
                "some have ended",
                retry_after_s=KEY_QUEUE_RETRY_AFTER_S,
            )
        return Created(kind=text(reply[1]))

    def _joined(self, new: NewExecution, parent: str | None) -> list[tuple[str, str]]:
        """The indexes a new execution joins (core/catalog.py reads them), each with how
        create.lua writes it: 'a' added (the sweep cuts it), 'k' also kept alive past its
        last add (a target's, an owner's: the sweep cuts those of registered nodes and keys),
        'c' also cut at each add (a run's, a parent's). A run the execution starts itself has
        no index until another execution joins it (`own_run_id`)."""
        k = self.keys
        run_id = new.fields["run_id"]
        indexes = [
            (k.index_all, "a"),
            (k.index_status(Status.QUEUED), "a"),
            (k.index_target(new.fields["target"]), "k"),
        ]
        if run_id != own_run_id(new.execution_id):
            indexes.append((k.index_run(run_id), "c"))
        if new.owner_listed:
            indexes.append((k.index_owner(new.owner), "k"))
        if parent is not None:
            indexes.append((k.index_parent(parent), "c"))
        return indexes

    async def visible(self, execution_id: str, owner: Identity) -> bool:
        """Whether `owner` may see the execution: it submitted it, or it is an admin's key
        (False also when there is no such execution)."""
        if owner.is_admin:
            return True
        if not safe_id(execution_id):
            return False
        found = await self.redis.hget(self.keys.execution(execution_id), "owner")  # type: ignore[misc]  # redis-py's async stubs
        return found is not None and text(found) == owner.key_id

    async def _durable(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run a transition; with REDIS_WAIT_REPLICAS, wait until that many replicas hold it.

        WAIT counts the writes of its own connection, so the script and the WAIT go down one
        connection, pipelined (one round trip). A script that changed nothing is waited for
        too: its reply is what an earlier, perhaps unreplicated, write left.
        """
        wanted = self.settings.redis_wait_replicas
        if not wanted:
            return await script(keys=keys, args=args)
        async with self.redis.pipeline(transaction=False) as pipe:
            await script(keys=keys, args=args, client=pipe)
            pipe.wait(wanted, self.settings.redis_wait_timeout_ms)
            reply, replicas = await pipe.execute()
        if replicas < wanted:
            raise NotReplicated(
                f"{replicas} of {wanted} replicas (AGENTFIELD_ARQ_REDIS_WAIT_REPLICAS) confirmed "
                f"the write within {self.settings.redis_wait_timeout_ms} ms; retry later"
            )
        return reply

    async def get_doc(self, execution_id: str) -> bytes | None:
        """The status document of one execution, as stored (JSON bytes), or None."""
        doc: bytes | None = await self.redis.get(self.keys.status_doc(execution_id))
        return doc

    def expired(self, execution_ids: list[str], now_ms: int) -> set[str]:
        """Of these ids without a record, those that answer 410 rather than 404: ids the API
        makes (they carry their creation time) made long enough ago for their record to have
        expired, and not so long ago that `EXPIRED_FOR_S` has passed since. No key is kept for
        it, so a forged id of the right age answers 410 too."""
        newest = now_ms - self.settings.retention_s * 1000
        oldest = now_ms - (self.record_lifetime_s + EXPIRED_FOR_S) * 1000
        return {i for i in execution_ids if oldest <= (id_ms(i, "exec") or -1) <= newest}

    async def get_view(self, execution_id: str, owner: Identity = ANONYMOUS_ADMIN) -> bytes | None:
        """The status document with its webhook delivery fields and notes, whole, in one round
        trip, or None (also for another key's execution, unless `owner` is an admin's key)."""
        if not safe_id(execution_id):
            return None
        found = await self._views.read([execution_id], owner, bounded=False)
        return found.get(execution_id)

    async def get_views(
        self, execution_ids: list[str], owner: Identity = ANONYMOUS_ADMIN
    ) -> list[bytes | None]:
        """`get_view` of many executions, in the order asked, bounded in bytes: a document over
        `batch_result_max_bytes`, or any result once the answer holds `batch_max_bytes`, comes
        with `result_truncated` and `result_size` instead of its result; Redis never sends the
        results over the cap (core/views.py). For a key other than an admin's, others'
        executions are None."""
        wanted = list(dict.fromkeys(safe_ids(execution_ids)))
        found = await self._views.read(wanted, owner, bounded=True) if wanted else {}
        return [found.get(i) for i in execution_ids]

    async def claim(
        self,
        execution_id: str,
        now_iso: str,
        now_ms: int,
        *,
        job_id: str | None = None,
        worker_id: str = "",
    ) -> Claim:
        """queued/running -> running (attempt + 1) for a worker about to invoke the agent, from
        the arq job `job_id` (the execution's first job by default); see claim.lua."""
        k = self.keys
        started = notice_job_id(execution_id, "started", 0)
        reply = await self._claim(
            keys=[
                k.execution(execution_id),
                k.status_doc(execution_id),
                k.events,
                k.holders,
                k.workers,
                *self._moving(),
                k.queue,
                k.arq_job(started),
                k.stats_wait,
                k.history(execution_id),
            ],
            args=[
                now_iso,
                now_ms,
                self.settings.stream_maxlen,
                job_id or execution_id,
                worker_id,
                started,
                notice_job_payload(execution_id, "started", 0, now_ms),
                JOB_PAYLOAD_TTL_MS,
                k.node(""),
                *DISPATCH_FIELDS,
            ],
        )
        outcome = Outcome(text(reply[0]))
        if outcome is not Outcome.OK:
            return Claim(outcome=outcome, status=text(reply[1]) if len(reply) > 1 else None)
        node = list(reply[1 : 1 + len(DISPATCH_FIELDS)])
        rest = reply[1 + len(DISPATCH_FIELDS) :]
        flat = dict(zip(rest[::2], rest[1::2], strict=True))
        body = flat.pop(b"input", b"{}")
        fields = {text(k): text(v) for k, v in flat.items()}
        return Claim(outcome=outcome, fields=fields, input=body, node=node)

    async def count_call(self, outcome: str) -> None:
        """Count one agent call by its outcome (for /metrics; not an execution's state)."""
        await self.redis.hincrby(self.keys.stats_agent_calls, outcome, 1)  # type: ignore[misc]  # redis-py's async stubs

    async def await_callback(
        self, execution_id: str, attempt: str, node_id: str, run_end: RunEnd | None = None
    ) -> bool:
        """Record that the agent answered 202; False if the attempt is no longer current.
        `run_end`: the worker's run job and call slot, ended in the same step (whatever its
        outcome)."""
        k = self.keys
        reply = await self._await_callback(
            keys=[
                k.execution(execution_id),
                k.holders,
                k.node_awaiting(node_id),
                k.history(execution_id),
                *_run_end_keys(k, run_end),
            ],
            args=[
                attempt,
                now_ms(),
                self._record_ttl_s,
                run_end.job_id if run_end else "",
                WAKE_SCAN,
            ],
        )
        return text(reply[0]) == Outcome.OK

    async def requeue(self, execution_id: str, fields: dict[str, str], hand_back: HandBack) -> bool:
        """Queue a running execution again under a fresh job id (see requeue.lua); `fields` are
        its hash as the caller saw it (its `attempt`, `job` and `node_id` fence the step).
        False when the execution had moved on meanwhile."""
        k = self.keys
        old_job = fields.get("job") or execution_id
        new_job = run_job_id(execution_id, new_id("j"))
        now = now_ms()
        reply = await self._requeue(
            keys=[
                k.execution(execution_id),
                k.status_doc(execution_id),
                k.events,
                k.queue,
                k.holders,
                k.arq_job(new_job),
                k.arq_job(old_job),
                k.arq_in_progress(old_job),
                k.arq_retry(old_job),
                k.node_awaiting(fields["node_id"]),
                k.workers,
                k.node_slots(fields["node_id"]),
                *self._moving(),
                k.history(execution_id),
            ],
            args=[
                now,
                self.settings.stream_maxlen,
                now + round(hand_back.delay_s * 1000),
                new_job,
                run_job_payload(execution_id, now),
                JOB_PAYLOAD_TTL_MS,
                old_job,
                fields["attempt"],
                hand_back.phase,
                hand_back.holder,
                "1" if hand_back.charged else "0",
                hand_back.reason,
                "1" if hand_back.lapsed_only else "0",
            ],
        )
        return text(reply[0]) == Outcome.OK

    async def holders(self) -> dict[str, str]:
        """Execution id -> the worker invoking its agent now, for every such execution."""
        raw = await self.redis.hgetall(self.keys.holders)  # type: ignore[misc]  # redis-py's async stubs
        return {text(k): text(v) for k, v in raw.items()}

    async def forget_holder(self, execution_id: str, holder: str) -> bool:
        """Drop a holder entry that still names `holder` (a dead worker's, or this worker's own
        once no attempt of it runs); True when one was dropped."""
        reply = await self._forget_holder(keys=[self.keys.holders], args=[execution_id, holder])
        return bool(int(reply))

    async def fence(self, execution_id: str) -> dict[str, str]:
        """The fields a hand-back of this execution is fenced on, as they stand now."""
        names = ["node_id", "attempt", "job", "status", "phase"]
        values = await self.redis.hmget(self.keys.execution(execution_id), names)  # type: ignore[misc]  # redis-py's async stubs
        return {n: text(v) for n, v in zip(names, values, strict=True) if v is not None}

    async def awaiting(self, node_id: str, now_ms: int) -> list[str]:
        """Ids of executions the node accepted with 202 whose deadline has not passed."""
        ids = await self.redis.zrangebyscore(self.keys.node_awaiting(node_id), now_ms, "+inf")
        return [text(i) for i in ids]

    @property
    def _record_ttl_s(self) -> int:
        return int(self.settings.execution_deadline_s) + NON_TERMINAL_GRACE_S

    async def progress(
        self,
        execution_id: str,
        status: str,
        now_iso: str,
        now_ms: int,
        progress: Any = None,
        message: str | None = None,
    ) -> Transition:
        """A non-terminal report (queued or running) from an agent, with its progress (any
        JSON) and message; see progress.lua for the webhook notices it queues."""
        if not safe_id(execution_id):
            return Transition(outcome=Outcome.MISSING)
        k = self.keys
        bucket = now_ms // max(int(self.settings.webhook_progress_interval_s * 1000), 1)
        started = notice_job_id(execution_id, "started", 0)
        progressed = notice_job_id(execution_id, "progress", bucket)
        reply = await self._durable(
            self._progress,
            [
                k.execution(execution_id),
                k.status_doc(execution_id),
                k.events,
                *self._moving(),
                k.queue,
                k.arq_job(started),
                k.arq_job(progressed),
                k.stats_wait,
                k.history(execution_id),
            ],
            [
                now_iso,
                now_ms,
                self.settings.stream_maxlen,
                status,
                b"" if progress is None else encode(progress),
                message or "",
                started,
                notice_job_payload(execution_id, "started", 0, now_ms),
                progressed,
                notice_job_payload(execution_id, "progress", bucket, now_ms),
                bucket,
                JOB_PAYLOAD_TTL_MS,
            ],
        )
        return _transition(reply)

    async def finish(
        self,
        execution_id: str,
        status: str,
        now_iso: str,
        now_ms: int,
        *,
        error: str | None = None,
        result: bytes | None = None,
        attempt: str | None = None,
        only_if_overdue: bool = False,
        duration_ms: int | None = None,
        want_doc: bool = False,
        call_outcome: str = "",
        run_end: RunEnd | None = None,
    ) -> Transition:
        """Make an execution terminal (once), queueing its webhook delivery if it has one;
        see finish.lua for the rules. The terminal document comes back only with `want_doc`
        (for a caller that answers with it): it holds the result, up to `max_result_bytes`.
        `call_outcome`: the agent call that brought the report, counted in the same step as
        `count_call` would (whatever the step's outcome). `run_end`: the worker's run job and
        call slot, ended in the same step (whatever its outcome)."""
        if not safe_id(execution_id):
            return Transition(outcome=Outcome.MISSING)
        k = self.keys
        job_id = delivery_job_id(execution_id)
        tell_id = tell_agent_job_id(execution_id)
        reply = await self._durable(
            self._finish,
            [
                k.execution(execution_id),
                k.status_doc(execution_id),
                k.deadlines,
                k.events,
                k.webhook(execution_id),
                k.webhook_events(execution_id),
                k.webhook_view(execution_id),
                k.queue,
                k.arq_job(job_id),
                k.children(execution_id),
                k.arq_job(tell_id),
                k.holders,
                *self._moving(),
                k.index_status(status),
                k.stats_run,
                k.stats_executions,
                k.index_status(Status.WAITING),
                k.history(execution_id),
                k.stats_agent_calls,
                k.large_docs,
                *_run_end_keys(k, run_end),
            ],
            [
                status,
                now_iso,
                now_ms,
                self.settings.retention_s,
                self.settings.stream_maxlen,
                attempt or "",
                "1" if only_if_overdue else "0",
                error or "",
                result if result is not None else b"",
                "" if duration_ms is None else int(duration_ms),
                webhook_id(execution_id),
                job_id,
                delivery_job_payload(execution_id, now_ms),
                self.settings.retention_s * 1000,
                k.key_active(""),
                tell_id,
                tell_agent_job_payload(execution_id, now_ms),
                "1" if want_doc else "0",
                call_outcome,
                self.settings.batch_result_max_bytes,
                run_end.job_id if run_end else "",
                WAKE_SCAN,
            ],
        )
        return _transition(reply)

    async def fields(self, execution_id: str) -> dict[str, str]:
        """The execution's hash (request and scheduling facts) with its id (the key's, as
        the scripts read it), {} when it is gone."""
        if not safe_id(execution_id):
            return {}
        flat = await self.redis.hgetall(self.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
        found = {text(k): text(v) for k, v in flat.items()}
        return {"execution_id": execution_id, **found} if found else {}

    async def webhook_secret(self, execution_id: str) -> str:
        """The execution's webhook signing secret ('' for none), kept beside its hash."""
        if not safe_id(execution_id):
            return ""
        found = await self.redis.get(self.keys.webhook_secret(execution_id))
        return "" if found is None else text(found)

    async def children(self, execution_id: str) -> list[str]:
        """Ids of the executions this one started in its run, oldest first."""
        members = await self.redis.smembers(self.keys.children(execution_id))  # type: ignore[misc]  # redis-py's async stubs
        return sorted(text(m) for m in members)

    async def note(self, execution_id: str, field: str, value: str) -> None:
        """Record a fact about an execution on its hash (never creating one that expired)."""
        await self._note(keys=[self.keys.execution(execution_id)], args=[field, value])

    async def add_note(self, execution_id: str, note: bytes) -> bool:
        """Append a note (JSON) to an execution; False when there is no such execution."""
        if not safe_id(execution_id):
            return False
        k = self.keys
        at = now_ms()
        reply = await self._add_note(
            keys=[
                k.execution(execution_id),
                k.notes(execution_id),
                k.notes_view(execution_id),
                k.events,
                k.noted,
            ],
            args=[
                note,
                NOTES_MAX,
                self.settings.stream_maxlen,
                execution_id,
                at,
                at + self.record_lifetime_s * 1000,
            ],
        )
        return text(reply[0]) == Outcome.OK

    async def notes(self, execution_id: str) -> list[bytes] | None:
        """An execution's notes (JSON each), oldest first; None when there is no execution."""
        if not safe_id(execution_id):
            return None
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(k.execution(execution_id))
            pipe.lrange(k.notes(execution_id), 0, -1)
            exists, notes = await pipe.execute()
        return list(notes) if exists else None

    @property
    def record_lifetime_s(self) -> int:
        """The longest an execution record can live: its deadline, the grace after it, then
        retention from its end. An index member older than that points at nothing."""
        deadline_s = int(self.settings.execution_deadline_s) + NON_TERMINAL_GRACE_S
        return deadline_s + self.settings.retention_s

    def index_cutoff(self, now_ms: int) -> str:
        """The id floor below which no execution record can still exist."""
        return id_floor("exec", now_ms - self.record_lifetime_s * 1000)

    def _index_bounds(self, now_ms: int) -> tuple[str, int]:
        return self.index_cutoff(now_ms), self.record_lifetime_s

    def _moving(self) -> tuple[str, str]:
        """The status indexes an execution leaves when it starts or ends."""
        return self.keys.index_status(Status.QUEUED), self.keys.index_status(Status.RUNNING)

    async def prune_indexes(self, now_ms: int, batch: int) -> int:
        """The sweep's share of index upkeep (create.lua cuts no index but a run's or a
        parent's): cut what no record can outlive from the global and status indexes and from
        those of every registered node's targets and every stored key, and drop the oldest
        `batch` members of the global index whose records have expired (from it and from the
        status indexes; the narrower ones are also dropped as a read meets them). Returns how
        many were dropped."""
        k = self.keys
        statuses = [k.index_all, *(k.index_status(s) for s in Status)]
        floor = "(" + self.index_cutoff(now_ms)
        oldest = [text(m) for m in await self.redis.zrangebylex(k.index_all, "-", "+", 0, batch)]
        docs = await self.redis.mget([k.status_doc(i) for i in oldest]) if oldest else []
        gone = [i for i, doc in zip(oldest, docs, strict=True) if doc is None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in statuses:
                pipe.zremrangebylex(index, "-", floor)
                if gone:
                    pipe.zrem(index, *gone)
            for index in await self._kept_indexes():
                pipe.zremrangebylex(index, "-", floor)
            await pipe.execute()
        return len(gone)

    async def _kept_indexes(self) -> list[str]:
        """The target indexes of the registered nodes and the owner indexes of the stored keys
        (those create.lua keeps alive without cutting)."""
        k = self.keys
        nodes = sorted(text(n) for n in await self.redis.smembers(k.nodes))  # type: ignore[misc]  # redis-py's async stubs
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hkeys(k.node_targets(node))
            pipe.hkeys(k.api_keys)
            *names, key_ids = await pipe.execute()
        targets = [
            k.index_target(f"{n}.{text(name)}")
            for n, each in zip(nodes, names, strict=True)
            for name in each
        ]
        return [*targets, *(k.index_owner(text(i)) for i in key_ids)]

    async def overdue(self, now_ms: int, limit: int) -> list[str]:
        """Ids of non-terminal executions whose deadline has passed, oldest first."""
        ids = await self.redis.zrangebyscore(
            self.keys.deadlines, "-inf", now_ms, start=0, num=limit
        )
        return [text(i) for i in ids]

    async def forget_deadline(self, execution_id: str) -> None:
        """Drop a deadline whose execution record no longer exists."""
        await self.redis.zrem(self.keys.deadlines, execution_id)


def _run_end_keys(k: Keys, run_end: RunEnd | None) -> list[str]:
    if run_end is None:
        return []
    job = run_end.job_id
    ended = [k.queue, k.arq_job(job), k.arq_in_progress(job), k.arq_retry(job)]
    if run_end.node_id:
        ended += [k.node_slots(run_end.node_id), k.node_waiting(run_end.node_id)]
    return ended


def _transition(reply: list[Any]) -> Transition:
    outcome = Outcome(text(reply[0]))
    if outcome in (Outcome.OK, Outcome.NOOP):
        return Transition(outcome=outcome, doc=reply[1] if len(reply) > 1 else None)
    return Transition(outcome=outcome, status=text(reply[1]) if len(reply) > 1 else None)
