"""Invoking an execution's agent and recording the outcome: what an arq worker job does.

What is tried again, and what is not:

- nothing was sent (the node is not live, the connection was refused or never made): the
  execution waits for its node, queued again within `agent_wait_max_s` each time, without
  spending attempts, until its deadline;
- 429, 502, 503 (the agent or its proxy refused before running anything): retried after a
  backoff, spending an attempt, up to `agent_max_attempts`;
- 2xx: succeeded (202: the agent reports later); any other 4xx: failed;
- 500, 504, any other 5xx, a timeout, a connection dropped after the request was sent:
  failed, since the agent may have run it (or still runs it); retried like a 503 only when
  the node registered `retry_safe`;
- the worker stops and its drain is over: handed back, without spending an attempt.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

import httpx
import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfield_arq.core.arq_bridge import run_job_execution
from agentfield_arq.core.dispatch import TOKEN_HEADER, DispatchTokens
from agentfield_arq.core.execution import FORWARDED_HEADERS, truncate
from agentfield_arq.core.nodes import Dispatch, NodeRegistry, read_base_url
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import NodeSlots
from agentfield_arq.core.store import Claim, ExecutionStore, HandBack, Outcome, RunEnd, Transition
from agentfield_arq.core.tracing import TRACEPARENT, Tracing
from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.codec import canonical_json, now_ms, rfc3339
from agentfield_arq.kernel.errors import (
    AgentAnswerTooLarge,
    AgentCallTransient,
    AgentNotReached,
    DestinationRefused,
    InvalidBaseUrl,
    NotReplicated,
)
from agentfield_arq.kernel.status import Status, TargetKind

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500
# Redis not answering: nothing can be recorded, so such a failure is not the execution's
# (nor is a write that no replica confirmed, with REDIS_WAIT_REPLICAS).
REDIS_AWAY = (RedisConnectionError, RedisTimeoutError)
AGENT_ERROR_BODY_CHARS = 500
# Answers by which the agent (or a proxy in front of it) refuses before running anything.
REFUSED_STATUSES = frozenset({429, 502, 503})
# Connecting to an agent takes at most this long, whatever the call's limit.
CONNECT_TIMEOUT_S = 5.0
DEADLINE_ERROR = "execution deadline exceeded"
# What the settle of the run in this task ends in the same step (`Runner.run` sets it for its
# job; a sweep's task has none, and its settles end no job).
_RUN_END: contextvars.ContextVar[RunEnd | None] = contextvars.ContextVar("run_end", default=None)


class Runner:
    """Runs one execution attempt: claim, call the agent, settle. Holds no state between jobs."""

    def __init__(
        self,
        store: ExecutionStore,
        nodes: NodeRegistry,
        http: httpx.AsyncClient,
        settings: Settings,
        worker_id: str = "",
        running: set[str] | None = None,
        tracing: Tracing | None = None,
        settled: set[str] | None = None,
    ) -> None:
        self.store = store
        self.nodes = nodes
        self.http = http
        self.settings = settings
        self.worker_id = worker_id
        # The arq job ids this worker runs now; its lease keeps their arq locks (see lease.py).
        self.running = set() if running is None else running
        self.slots = NodeSlots(store.redis, settings)
        self.tokens = DispatchTokens(store.redis, store.keys)
        self.tracing = tracing or Tracing()
        # The run jobs whose settle ended them (finish.lua deleted their arq keys and freed
        # their slot), for the worker to skip arq's own finish of them (WakingWorker); None: a
        # worker that finishes every job itself, and settles that end none.
        self.settled = settled

    async def run(
        self, execution_id: str, job_id: str | None = None, last_try: bool = False
    ) -> float | None:
        """One attempt from the arq job `job_id` (the execution's first job by default).
        Returns the seconds this same job waits before asking again while the node has as many
        calls in flight as its cap allows (a deferral that spends no attempt), else None. What
        is tried again after a call is queued again under a new job id; on `last_try` (arq's
        tries of this job id are spent) it fails instead.

        An unexpected exception, a bug of ours or an answer our code could not handle, fails
        the execution with `internal error: <type>`: a crash never leaves it `running`. Redis
        going away is not one (nothing could be recorded); it propagates.
        """
        job = job_id or execution_id
        try:
            slot = await self.slots.take(execution_id, now_ms(), job)
            if slot is not None and not slot.taken:
                return slot.wait_s
            # From before the claim: the lease hands back this worker's holds of which no job
            # is in `running` (lease.py), and must not take one being claimed. A job already
            # there is one arq started again while this worker still runs it.
            again = job in self.running
            self.running.add(job)
            end = None
            if self.settled is not None and not again:
                end = RunEnd(job_id=job, node_id=slot.node_id if slot is not None else "")
            reset = _RUN_END.set(end)
            try:
                await self._claimed(execution_id, job, last_try, again)
            finally:
                _RUN_END.reset(reset)
                if not again:
                    self.running.discard(job)
                ended = end is not None and self.settled is not None and job in self.settled
                if slot is not None and not ended:
                    try:
                        await self.slots.give_back(slot.node_id, execution_id)
                    except REDIS_AWAY:
                        self.slots.give_back_later(slot.node_id, execution_id)
                        raise
        except (*REDIS_AWAY, NotReplicated):
            raise
        except Exception as exc:
            await self._crashed(execution_id, exc)
        return None

    async def _crashed(self, execution_id: str, exc: Exception) -> None:
        # Not fenced by attempt: the crash may have come before or during the claim.
        logger.error("internal error execution_id=%s", execution_id, exc_info=exc)
        try:
            await self._fail(execution_id, None, f"internal error: {type(exc).__name__}")
        except Exception as again:
            logger.error(
                "internal error not recorded execution_id=%s: %s: %s",
                execution_id,
                type(again).__name__,
                again,
            )

    async def _claimed(self, execution_id: str, job: str, last_try: bool, again: bool) -> None:
        now = now_ms()
        claim = await self.store.claim(
            execution_id, rfc3339(now), now, job_id=job, worker_id=self.worker_id
        )
        if (
            claim.outcome is Outcome.HELD
            and not again
            and await self._released_own_hold(execution_id, job)
        ):
            # This worker held it, but none of its attempts runs here any more: the job that
            # held it was cut short (a Redis outage under its settle), and arq runs it again.
            claim = await self.store.claim(
                execution_id, rfc3339(now), now, job_id=job, worker_id=self.worker_id
            )
        if claim.outcome is Outcome.OVERDUE:
            await self._time_out(execution_id, now)
            return
        if claim.outcome is not Outcome.OK:
            logger.info("skip execution_id=%s: %s %s", execution_id, claim.outcome, claim.status)
            return
        fields = claim.fields
        attempt = int(fields["attempt"])
        spent = attempt - int(fields.get("uncharged", "0"))
        if spent > self.settings.agent_max_attempts:
            await self._fail(execution_id, attempt, f"gave up after {spent - 1} attempts")
            return
        await self._attempt(execution_id, claim, attempt, spent, last_try)

    async def _released_own_hold(self, execution_id: str, job: str) -> bool:
        running = (j for j in self.running if j != job)
        if not self.worker_id or any(run_job_execution(j) == execution_id for j in running):
            return False
        return await self.store.forget_holder(execution_id, self.worker_id)

    async def _attempt(
        self, execution_id: str, claim: Claim, attempt: int, spent: int, last_try: bool
    ) -> None:
        fields = claim.fields
        try:
            target = fields.get("target", "")
            with self.tracing.span(f"run {target}", fields.get(TRACEPARENT), "CONSUMER") as tp:
                await self._invoke(execution_id, claim, tp)
        except AgentNotReached as exc:
            if last_try:
                await self._fail(execution_id, attempt, f"{exc} (arq's tries are spent)")
                return
            waits = int(fields.get("uncharged", "0")) + 1
            delay = backoff_s(
                waits, self.settings.agent_retry_base_s, self.settings.agent_wait_max_s
            )
            await self._hand_back(execution_id, fields, HandBack(reason=str(exc), delay_s=delay))
        except AgentCallTransient as exc:
            if last_try or spent >= self.settings.agent_max_attempts:
                await self._fail(execution_id, attempt, f"{exc} (after {spent} attempts)")
                return
            delay = backoff_s(
                spent, self.settings.agent_retry_base_s, self.settings.agent_retry_max_s
            )
            back = HandBack(reason=str(exc), delay_s=delay, charged=True)
            await self._hand_back(execution_id, fields, back)
        except asyncio.CancelledError:
            # The worker is stopping and its drain is over: the execution goes back unspent.
            back = HandBack(reason="worker stopped")
            await asyncio.shield(self._hand_back(execution_id, fields, back))
            raise

    async def _hand_back(self, execution_id: str, fields: dict[str, str], back: HandBack) -> None:
        back = msgspec.structs.replace(back, holder=self.worker_id)
        if await self.store.requeue(execution_id, fields, back):
            logger.warning(
                "requeued execution_id=%s attempt=%s in %.1fs (%s): %s",
                execution_id, fields["attempt"], back.delay_s,
                "spent" if back.charged else "unspent", back.reason,
            )  # fmt: skip

    async def _invoke(self, execution_id: str, claim: Claim, traceparent: str | None) -> None:
        """Call the agent with the claimed input (JSON bytes, as stored), at the node as the
        claim read it, and record its answer."""
        fields, body = claim.fields, claim.input
        attempt = fields["attempt"]
        node = self.nodes.dispatch_of(claim.node)
        if node is None:
            await self.store.count_call("node_gone")
            await self._fail(execution_id, int(attempt), f"node '{fields['node_id']}' is gone")
            return
        try:
            # Registration checks it; a record written before that rule, or by hand, may not.
            base_url = read_base_url(node.base_url)
        except InvalidBaseUrl as exc:
            await self._fail(execution_id, int(attempt), f"node '{fields['node_id']}': {exc}")
            return
        if not node.live:
            raise AgentNotReached(f"node '{fields['node_id']}' is not live")
        limit_s = self._limit_s(fields, node)
        kind = "reasoners" if fields["type"] == TargetKind.REASONER else "skills"
        url = f"{base_url}/{kind}/{fields['name']}"
        try:
            # httpx's timeout bounds each phase (connect, each read); this bounds the whole call,
            # so a trickling agent cannot outlive the job and leave the execution unsettled.
            async with asyncio.timeout(limit_s):
                with self.tracing.span(f"call {fields['target']}", traceparent, "CLIENT") as tp:
                    status, answer = await self._post(url, fields, body, limit_s, tp)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            await self.store.count_call("unreachable")
            raise AgentNotReached(f"agent unreachable ({type(exc).__name__}: {exc})") from exc
        except (TimeoutError, httpx.TimeoutException, httpx.TransportError) as exc:
            await self.store.count_call(
                "unreachable" if isinstance(exc, httpx.NetworkError) else "timeout"
            )
            await self._may_have_run(execution_id, attempt, node, _describe(exc, limit_s))
            return
        except AgentAnswerTooLarge:
            await self.store.count_call("too_large")
            await self._fail(execution_id, int(attempt), "agent result is too large")
            return
        except DestinationRefused as exc:
            await self.store.count_call("destination_refused")
            await self._fail(execution_id, int(attempt), str(exc))
            return
        if 200 <= status < 300 and status != 202:
            await self._succeed(execution_id, attempt, answer, _outcome_of(status))
            return
        await self.store.count_call(_outcome_of(status))
        if status == 202:
            end = _RUN_END.get()
            accepted = await self.store.await_callback(
                execution_id, attempt, fields["node_id"], run_end=end
            )
            self._ended(end)
            if accepted:
                logger.info("awaiting callback execution_id=%s", execution_id)
            return
        shown = answer[:AGENT_ERROR_BODY_CHARS].decode(errors="replace")
        error = f"agent answered {status}: {shown}"
        if status in REFUSED_STATUSES:
            raise AgentCallTransient(error)
        if status >= 500:
            await self._may_have_run(execution_id, attempt, node, error)
            return
        await self._fail(execution_id, int(attempt), error)

    def _limit_s(self, fields: dict[str, str], node: Dispatch) -> float:
        """The call's limit: the request's, else the node's, else the default; never past the
        execution's deadline."""
        asked = fields.get("timeout_s")
        limit = float(asked) if asked else node.timeout_s or self.settings.agent_timeout_s
        left_s = (int(fields["deadline_ms"]) - now_ms()) / 1000
        return max(0.001, min(limit, self.settings.agent_max_timeout_s, left_s))

    async def _may_have_run(
        self, execution_id: str, attempt: str, node: Dispatch, error: str
    ) -> None:
        """The agent may have run the call (or still runs it): repeated only if the node said
        its calls are safe to repeat."""
        if node.retry_safe:
            raise AgentCallTransient(error)
        await self._fail(execution_id, int(attempt), f"{error}; not retried, it may have run")

    async def _post(
        self, url: str, fields: dict[str, str], body: bytes, limit_s: float, traceparent: str | None
    ) -> tuple[int, bytes]:
        headers = {
            "Content-Type": "application/json",
            "X-Execution-ID": fields["execution_id"],
            "X-Run-ID": fields["run_id"],
            "X-Workflow-ID": fields["run_id"],
            # The agent's proof, on its callback, that it is the node this was sent to.
            TOKEN_HEADER: await self.tokens.token(fields["execution_id"]),
        }
        for header, field in FORWARDED_HEADERS.items():
            if field in fields:
                headers[header] = fields[field]
        if traceparent is not None:
            headers[TRACEPARENT] = traceparent
        cap = self.settings.max_result_bytes
        timeout = httpx.Timeout(limit_s, connect=min(limit_s, CONNECT_TIMEOUT_S))
        async with self.http.stream(
            "POST", url, content=body, headers=headers, timeout=timeout
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise AgentAnswerTooLarge
                chunks.append(chunk)
        return response.status_code, b"".join(chunks)

    async def _succeed(self, execution_id: str, attempt: str, body: bytes, counted: str) -> None:
        """Settle an inline answer; `counted` is the call's outcome, counted by the same step."""
        try:
            result = _as_json(body)
        except RecursionError:
            error = "agent answer is nested too deep to read"
            await self._fail(execution_id, int(attempt), error, counted)
            return
        now = now_ms()
        transition = await self._settle(
            execution_id,
            Status.SUCCEEDED,
            now,
            result=result,
            attempt=attempt,
            call_outcome=counted,
        )
        logger.info("succeeded execution_id=%s (%s)", execution_id, transition.outcome)

    async def _settle(
        self,
        execution_id: str,
        status: Status,
        now: int,
        *,
        error: str | None = None,
        result: bytes | None = None,
        attempt: str | None = None,
        only_if_overdue: bool = False,
        call_outcome: str = "",
    ) -> Transition:
        """`store.finish`, ending in the same step the run job of this task and its slot, if
        any (`_RUN_END`), whatever the step's outcome."""
        end = _RUN_END.get()
        transition = await self.store.finish(
            execution_id,
            status,
            rfc3339(now),
            now,
            error=error,
            result=result,
            attempt=attempt,
            only_if_overdue=only_if_overdue,
            call_outcome=call_outcome,
            run_end=end,
        )
        self._ended(end)
        return transition

    def _ended(self, end: RunEnd | None) -> None:
        """A step that ended this task's run job (`end`) came back: arq is left nothing to do."""
        if end is not None and self.settled is not None:
            self.settled.add(end.job_id)

    async def _fail(
        self, execution_id: str, attempt: int | None, error: str, counted: str = ""
    ) -> None:
        now = now_ms()
        transition = await self._settle(
            execution_id,
            Status.FAILED,
            now,
            error=truncate(error),
            attempt=None if attempt is None else str(attempt),
            call_outcome=counted,
        )
        logger.warning("failed execution_id=%s (%s): %s", execution_id, transition.outcome, error)

    async def _time_out(self, execution_id: str, now: int) -> int:
        transition = await self._settle(
            execution_id, Status.TIMEOUT, now, error=DEADLINE_ERROR, only_if_overdue=True
        )
        if transition.outcome is Outcome.OK:
            logger.warning("timeout execution_id=%s", execution_id)
            return 1
        if transition.outcome is Outcome.MISSING:
            await self.store.forget_deadline(execution_id)
        return 0

    async def sweep(self) -> int:
        """Turn overdue non-terminal executions into `timeout`; returns how many changed."""
        changed = 0
        now = now_ms()
        for execution_id in await self.store.overdue(now, SWEEP_BATCH):
            try:
                changed += await self._time_out(execution_id, now)
            except (*REDIS_AWAY, NotReplicated):
                raise
            except Exception as exc:
                # One record that crashes the sweep must not keep it from the others.
                await self._crashed(execution_id, exc)
        await self.store.prune_indexes(now, SWEEP_BATCH)
        return changed


def _describe(exc: Exception, limit_s: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"agent timed out after {limit_s:g}s ({type(exc).__name__})"
    return f"agent connection lost ({type(exc).__name__}: {exc})"


def _outcome_of(status: int) -> str:
    """How an agent's answer counts in `agentfield_arq_agent_calls_total`."""
    if status == 202:
        return "accepted"
    if 200 <= status < 300:
        return "succeeded"
    if 400 <= status < 500:
        return "refused"
    return "error"


def _as_json(body: bytes) -> bytes:
    """The agent's body as a JSON value: as is when it is JSON, else as a JSON string."""
    if not body.strip():
        return b"null"
    try:
        return canonical_json(body)
    except msgspec.DecodeError:
        return msgspec.json.encode(body.decode(errors="replace"))
