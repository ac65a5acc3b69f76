"""Running reasoners and reporting how they ended.

A reasoner asked with `X-Execution-ID` is answered 202 at once and runs as a background task
kept by execution id (a task nothing references can be garbage-collected mid-flight, and asking
again for an execution that runs here must not start it twice); its end is posted to the control
plane's callback route, retried with backoff on 5xx, 408, 429 and network errors. A result too
large to be taken (over `max_result_bytes`, or refused with 413) is reported as a failure, so
that the execution ends instead of waiting for its deadline.

The control plane cancels a running execution at the agent's cancel route (`cancel`): the
reasoner's task is cancelled (asyncio), and its end is reported as `cancelled`, once. A report
refused because the execution was already cancelled or timed out is expected after a cancel
(the reasoner finished first, or swallowed the cancellation): logged as information.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import msgspec

from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.models import CallbackRequest
from agentfield_arq.sdk.context import ExecutionContext, entered
from agentfield_arq.sdk.parameters import Target

logger = logging.getLogger(__name__)

CALLBACK_ATTEMPTS = 8
CALLBACK_BASE_S = 0.5
CALLBACK_CAP_S = 15.0
# After the drain budget, cancelled reasoners get this long to report that they were cut short.
CANCEL_REPORT_S = 5.0
RETRIED_STATUSES = frozenset({408, 425, 429})
CANCELLED_ERROR = "cancelled by the control plane"
STOPPED_STATUSES = frozenset({"cancelled", "timeout"})
# The control plane's default cap on a result (AGENTFIELD_ARQ_MAX_RESULT_BYTES): a bigger one
# is reported as a failure rather than sent to be refused.
MAX_RESULT_BYTES = 10_485_760
_JSON = {"Content-Type": "application/json"}


class Outcome(msgspec.Struct, kw_only=True):
    """How one invocation ended: the JSON of its result, or an error message."""

    result: msgspec.Raw | None = None
    error: str | None = None
    cancelled: bool = False


class Refusal(msgspec.Struct, kw_only=True):
    """What this module reads of a refused report's answer: the execution's status, which a
    409 names."""

    status: str | None = None


_refusal = msgspec.json.Decoder(Refusal)


def _report(execution_id: str, target: Target, started: float, outcome: Outcome) -> bytes:
    """The callback body: AgentField's shape, `result` on success and `error` otherwise."""
    failed = outcome.error is not None
    report = CallbackRequest(
        status="cancelled" if outcome.cancelled else "failed" if failed else "succeeded",
        result=msgspec.UNSET if failed or outcome.result is None else outcome.result,
        error=outcome.error,
        duration_ms=int((time.monotonic() - started) * 1000),
        completed_at=rfc3339(now_ms()),
        execution_id=execution_id,
        reasoner=target.name,
    )
    return msgspec.json.encode(report)


async def settle(target: Target, kwargs: dict[str, Any]) -> Outcome:
    """Invoke `target`; an exception or a result that is not JSON becomes an error message."""
    try:
        value = await target.invoke(kwargs)
    except Exception as exc:
        logger.warning("%s '%s' raised %s", target.kind, target.name, exc, exc_info=exc)
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    try:
        return Outcome(result=msgspec.Raw(msgspec.json.encode(value)))
    except TypeError as exc:
        return Outcome(error=f"result of '{target.name}' is not JSON-serialisable: {exc}")


class Reporter:
    """Runs accepted reasoners in the background, one at a time per execution id, and reports
    each end once."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        attempts: int = CALLBACK_ATTEMPTS,
        base_s: float = CALLBACK_BASE_S,
        cap_s: float = CALLBACK_CAP_S,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.http = http
        self.attempts, self.base_s, self.cap_s = attempts, base_s, cap_s
        self.max_result_bytes = max_result_bytes
        # By execution id: the control plane may ask again for an execution already running
        # here (its worker died between our 202 and recording it); that must not run it twice.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Inline invocations that name their execution, which a cancel reaches too.
        self._inline: dict[str, asyncio.Task[Outcome]] = {}
        # Executions whose task the control plane cancelled (not the drain).
        self._cancelled: set[str] = set()
        # Executions whose reasoner has ended and whose end is being reported: too late to cancel.
        self._reporting: set[str] = set()

    @property
    def in_flight(self) -> int:
        """Reasoners accepted and not yet reported."""
        return len(self._tasks)

    def start(self, context: ExecutionContext, target: Target, kwargs: dict[str, Any]) -> bool:
        """Run `target` in the background and report its end for `context.execution_id`;
        False (and nothing started) while that execution already runs here."""
        execution_id = context.execution_id or ""
        if execution_id in self._tasks:
            logger.info(
                "execution_id=%s is already running here; not starting it again", execution_id
            )
            return False
        task = asyncio.create_task(
            self._run(context, target, kwargs), name=f"{target.name} {execution_id}"
        )
        self._tasks[execution_id] = task
        task.add_done_callback(lambda _: self._forget(execution_id))
        return True

    def _forget(self, execution_id: str) -> None:
        self._tasks.pop(execution_id, None)
        self._reporting.discard(execution_id)
        self._cancelled.discard(execution_id)  # a reasoner that swallowed its cancellation

    def cancel(self, execution_id: str) -> bool:
        """Cancel the task running `execution_id` here; False when none runs (it ended, or it
        never ran here)."""
        task = self._tasks.get(execution_id) or self._inline.get(execution_id)
        if task is None or task.done() or execution_id in self._reporting:
            return False
        self._cancelled.add(execution_id)
        task.cancel()
        logger.info("cancelling execution_id=%s at the control plane's request", execution_id)
        return True

    async def inline(
        self, context: ExecutionContext, target: Target, kwargs: dict[str, Any]
    ) -> Outcome:
        """Invoke `target` for a request that awaits its result, in a task that `cancel`
        reaches when the request names its execution."""
        execution_id = context.execution_id
        with entered(context):
            task = asyncio.create_task(settle(target, kwargs))
        if execution_id:
            self._inline[execution_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the request itself is being cancelled
            return Outcome(error=CANCELLED_ERROR, cancelled=True)
        finally:
            if execution_id:
                self._inline.pop(execution_id, None)
                self._cancelled.discard(execution_id)

    async def _run(self, context: ExecutionContext, target: Target, kwargs: dict[str, Any]) -> None:
        execution_id = context.execution_id or ""
        started = time.monotonic()
        with entered(context):
            try:
                outcome = await settle(target, kwargs)
                attempts = self.attempts
            except asyncio.CancelledError:
                if execution_id in self._cancelled:
                    self._cancelled.discard(execution_id)
                    outcome = Outcome(error=CANCELLED_ERROR, cancelled=True)
                else:  # the drain ran out: say so rather than leave it running
                    outcome = Outcome(error="the agent shut down before the reasoner finished")
                attempts = 1
        self._reporting.add(execution_id)
        size = len(outcome.result) if outcome.result is not None else 0
        if size > self.max_result_bytes:
            cap = self.max_result_bytes
            outcome = Outcome(
                error=f"result too large: {size} bytes, over the agent's cap of {cap}"
            )
        body = _report(execution_id, target, started, outcome)
        token = context.callback_token
        trace = context.trace_headers()
        taken = await self.report(execution_id, body, attempts, token, trace)
        if taken == 413 and outcome.result is not None:
            # The control plane's cap is below ours: end the execution now rather than leave it
            # running until its deadline.
            error = f"result too large: the control plane refused its {size} bytes (HTTP 413)"
            refused = _report(execution_id, target, started, Outcome(error=error))
            await self.report(execution_id, refused, token=token, headers=trace)

    async def report(
        self,
        execution_id: str,
        body: bytes,
        attempts: int | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> int | None:
        """POST a status report (with the execution's callback `token`, when the control plane
        sent one, and `headers`: the trace context), retrying 5xx, 408, 425, 429 and network
        errors; the last HTTP status (2xx: taken), None when the control plane never answered."""
        url = f"/api/v1/executions/{execution_id}/status"
        attempts = attempts or self.attempts
        status: int | None = None
        sent = {**_JSON, **(headers or {})}
        if token:
            sent["X-Callback-Token"] = token
        for attempt in range(1, attempts + 1):
            try:
                response = await self.http.post(url, content=body, headers=sent)
            except httpx.TransportError as exc:
                status, problem = None, f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if response.is_success:
                    logger.info("reported execution_id=%s", execution_id)
                    return status
                problem = f"HTTP {status}: {response.text[:200]}"
                if status < 500 and status not in RETRIED_STATUSES:
                    _log_refusal(execution_id, response, problem)
                    return status
            if attempt < attempts:
                delay = backoff_s(attempt, self.base_s, self.cap_s)
                logger.warning(
                    "report failed execution_id=%s (%s), retrying in %.1fs",
                    execution_id,
                    problem,
                    delay,
                )
                await asyncio.sleep(delay)
        logger.error("gave up reporting execution_id=%s after %d attempts", execution_id, attempts)
        return status

    async def drain(self, timeout_s: float) -> None:
        """Let running reasoners finish and report within `timeout_s`; cut the rest short."""
        if not self._tasks:
            return
        logger.info("waiting up to %.0fs for %d reasoner(s)", timeout_s, len(self._tasks))
        _, late = await asyncio.wait(set(self._tasks.values()), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=CANCEL_REPORT_S)


def _log_refusal(execution_id: str, response: httpx.Response, problem: str) -> None:
    """A report refused because the execution was cancelled (or timed out) meanwhile is
    expected: information. Any other refusal is an error."""
    try:
        status = _refusal.decode(response.content).status if response.status_code == 409 else None
    except msgspec.DecodeError:
        status = None
    if status in STOPPED_STATUSES:
        logger.info(
            "report not taken execution_id=%s: the execution was %s meanwhile", execution_id, status
        )
    else:
        logger.error("report refused execution_id=%s: %s", execution_id, problem)
