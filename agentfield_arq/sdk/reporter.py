"""Running reasoners and reporting how they ended.

A reasoner asked with `X-Execution-ID` is answered 202 at once and runs as a background task
kept by execution id (a task nothing references can be garbage-collected mid-flight, and asking
again for an execution that runs here must not start it twice); its end is posted to the control
plane's callback route, retried with backoff on 5xx, 408, 429 and network errors. A result too
large to be taken (over `max_result_bytes`, or refused with 413) is reported as a failure, so
that the execution ends instead of waiting for its deadline.
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
# The control plane's default cap on a result (AGENTFIELD_ARQ_MAX_RESULT_BYTES): a bigger one
# is reported as a failure rather than sent to be refused.
MAX_RESULT_BYTES = 10_485_760
_JSON = {"Content-Type": "application/json"}


class Outcome(msgspec.Struct, kw_only=True):
    """How one invocation ended: the JSON of its result, or an error message."""

    result: msgspec.Raw | None = None
    error: str | None = None


def _report(execution_id: str, target: Target, started: float, outcome: Outcome) -> bytes:
    """The callback body: AgentField's shape, `result` on success and `error` otherwise."""
    failed = outcome.error is not None
    report = CallbackRequest(
        status="failed" if failed else "succeeded",
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
        task.add_done_callback(lambda _: self._tasks.pop(execution_id, None))
        return True

    async def _run(self, context: ExecutionContext, target: Target, kwargs: dict[str, Any]) -> None:
        execution_id = context.execution_id or ""
        started = time.monotonic()
        with entered(context):
            try:
                outcome = await settle(target, kwargs)
                attempts = self.attempts
            except asyncio.CancelledError:  # drain ran out: say so rather than leave it running
                outcome = Outcome(error="the agent shut down before the reasoner finished")
                attempts = 1
        size = len(outcome.result) if outcome.result is not None else 0
        if size > self.max_result_bytes:
            cap = self.max_result_bytes
            outcome = Outcome(
                error=f"result too large: {size} bytes, over the agent's cap of {cap}"
            )
        body = _report(execution_id, target, started, outcome)
        trace = context.trace_headers()
        status = await self.report(execution_id, body, attempts, trace)
        if status == 413 and outcome.result is not None:
            # The control plane's cap is below ours: end the execution now rather than leave it
            # running until its deadline.
            error = f"result too large: the control plane refused its {size} bytes (HTTP 413)"
            refused = _report(execution_id, target, started, Outcome(error=error))
            await self.report(execution_id, refused, headers=trace)

    async def report(
        self,
        execution_id: str,
        body: bytes,
        attempts: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> int | None:
        """POST a status report, retrying 5xx, 408, 425, 429 and network errors; the last HTTP
        status (2xx: taken), None when the control plane never answered."""
        url = f"/api/v1/executions/{execution_id}/status"
        attempts = attempts or self.attempts
        status: int | None = None
        sent = {**_JSON, **(headers or {})}
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
                    logger.error("report refused execution_id=%s: %s", execution_id, problem)
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
