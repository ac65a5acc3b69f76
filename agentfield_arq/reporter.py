"""Running reasoners and reporting how they ended.

A reasoner asked with `X-Execution-ID` is answered 202 at once and runs as a background task
kept in a set (a task nothing references can be garbage-collected mid-flight); its end is posted
to the control plane's callback route, retried with backoff on 5xx, 408, 429 and network errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import msgspec

from agentfield_arq.backoff import backoff_s
from agentfield_arq.codec import now_ms, rfc3339
from agentfield_arq.context import ExecutionContext, entered
from agentfield_arq.signature import Target

logger = logging.getLogger(__name__)

CALLBACK_ATTEMPTS = 8
CALLBACK_BASE_S = 0.5
CALLBACK_CAP_S = 15.0
# After the drain budget, cancelled reasoners get this long to report that they were cut short.
CANCEL_REPORT_S = 5.0
RETRIED_STATUSES = frozenset({408, 425, 429})
_JSON = {"Content-Type": "application/json"}


class Outcome(msgspec.Struct, kw_only=True):
    """How one invocation ended: the JSON of its result, or an error message."""

    result: msgspec.Raw | None = None
    error: str | None = None


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
    """Runs accepted reasoners in the background and reports each end once."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        attempts: int = CALLBACK_ATTEMPTS,
        base_s: float = CALLBACK_BASE_S,
        cap_s: float = CALLBACK_CAP_S,
    ) -> None:
        self.http = http
        self.attempts, self.base_s, self.cap_s = attempts, base_s, cap_s
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Reasoners accepted and not yet reported."""
        return len(self._tasks)

    def start(self, context: ExecutionContext, target: Target, kwargs: dict[str, Any]) -> None:
        """Run `target` in the background and report its end for `context.execution_id`."""
        task = asyncio.create_task(
            self._run(context, target, kwargs), name=f"{target.name} {context.execution_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        body: dict[str, Any] = {
            "status": "failed" if outcome.error is not None else "succeeded",
            "duration_ms": int((time.monotonic() - started) * 1000),
            "completed_at": rfc3339(now_ms()),
            "execution_id": execution_id,
            "reasoner": target.name,
        }
        if outcome.error is not None:
            body["error"] = outcome.error
        else:
            body["result"] = outcome.result
        await self.report(execution_id, msgspec.json.encode(body), attempts)

    async def report(self, execution_id: str, body: bytes, attempts: int | None = None) -> bool:
        """POST a status report; True once the control plane took it (any 2xx)."""
        url = f"/api/v1/executions/{execution_id}/status"
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self.http.post(url, content=body, headers=_JSON)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    logger.info("reported execution_id=%s", execution_id)
                    return True
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code not in RETRIED_STATUSES:
                    logger.error("report refused execution_id=%s: %s", execution_id, problem)
                    return False
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
        return False

    async def drain(self, timeout_s: float) -> None:
        """Let running reasoners finish and report within `timeout_s`; cut the rest short."""
        if not self._tasks:
            return
        logger.info("waiting up to %.0fs for %d reasoner(s)", timeout_s, len(self._tasks))
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=CANCEL_REPORT_S)
