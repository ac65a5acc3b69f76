"""Invoking an execution's agent and recording the outcome: what an arq worker job does."""

from __future__ import annotations

import asyncio
import logging

import httpx
import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfield_arq.core.dispatch import TOKEN_HEADER, DispatchTokens
from agentfield_arq.core.execution import FORWARDED_HEADERS, truncate
from agentfield_arq.core.nodes import NodeRegistry, read_base_url
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import NodeSlots
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.core.tracing import TRACEPARENT, Tracing
from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.codec import canonical_json, now_ms, rfc3339
from agentfield_arq.kernel.errors import (
    AgentAnswerTooLarge,
    AgentCallTransient,
    DestinationRefused,
    InvalidBaseUrl,
)
from agentfield_arq.kernel.status import Status, TargetKind

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500
# Redis not answering: nothing can be recorded, so such a failure is not the execution's.
REDIS_AWAY = (RedisConnectionError, RedisTimeoutError)
AGENT_ERROR_BODY_CHARS = 500


class Runner:
    """Runs one execution attempt: claim, call the agent, settle. Holds no state between jobs."""

    def __init__(
        self,
        store: ExecutionStore,
        nodes: NodeRegistry,
        http: httpx.AsyncClient,
        settings: Settings,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.nodes = nodes
        self.http = http
        self.settings = settings
        self.slots = NodeSlots(store.redis, settings)
        self.tokens = DispatchTokens(store.redis, store.keys)
        self.tracing = tracing or Tracing()

    async def run(self, execution_id: str, last_try: bool) -> float | None:
        """One attempt; returns seconds to wait before the next one, or None when settled.

        The attempt waits its turn (a deferral that spends no attempt) while the node has as
        many calls in flight as its cap allows. An unexpected exception, a bug of ours or an
        answer our code could not handle, fails the execution with `internal error: <type>`:
        a crash never leaves it `running`. Redis going away is not one (nothing could be
        recorded); it propagates.
        """
        try:
            slot = await self.slots.take(execution_id, now_ms())
            if slot is not None and not slot.taken:
                return slot.wait_s
            try:
                return await self._attempt(execution_id, last_try)
            finally:
                if slot is not None:
                    await self.slots.give_back(slot.node_id, execution_id)
        except REDIS_AWAY:
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

    async def _attempt(self, execution_id: str, last_try: bool) -> float | None:
        now = now_ms()
        claim = await self.store.claim(execution_id, rfc3339(now), now)
        if claim.outcome is not Outcome.OK:
            logger.info("skip execution_id=%s: %s %s", execution_id, claim.outcome, claim.status)
            return None
        fields = claim.fields
        attempt = int(fields["attempt"])
        if attempt > self.settings.agent_max_attempts:
            await self._fail(execution_id, attempt, f"gave up after {attempt - 1} attempts")
            return None
        try:
            target = fields.get("target", "")
            with self.tracing.span(f"run {target}", fields.get(TRACEPARENT), "CONSUMER") as tp:
                await self._invoke(execution_id, fields, tp)
        except AgentCallTransient as exc:
            if last_try or attempt >= self.settings.agent_max_attempts:
                await self._fail(execution_id, attempt, f"{exc} (after {attempt} attempts)")
                return None
            delay = backoff_s(
                attempt, self.settings.agent_retry_base_s, self.settings.agent_retry_max_s
            )
            logger.warning(
                "retry execution_id=%s attempt=%d in %.1fs: %s", execution_id, attempt, delay, exc
            )
            return delay
        return None

    async def _invoke(
        self, execution_id: str, fields: dict[str, str], traceparent: str | None
    ) -> None:
        attempt = fields["attempt"]
        base_url = await self.nodes.base_url(fields["node_id"])
        if base_url is None:
            await self.store.count_call("node_gone")
            await self._fail(execution_id, int(attempt), f"node '{fields['node_id']}' is gone")
            return
        try:
            # Registration checks it; a record written before that rule, or by hand, may not.
            base_url = read_base_url(base_url)
        except InvalidBaseUrl as exc:
            await self._fail(execution_id, int(attempt), f"node '{fields['node_id']}': {exc}")
            return
        kind = "reasoners" if fields["type"] == TargetKind.REASONER else "skills"
        url = f"{base_url}/{kind}/{fields['name']}"
        try:
            # httpx's timeout bounds each phase (connect, each read); this bounds the whole call,
            # so a trickling agent cannot outlive the job and leave the execution unsettled.
            async with asyncio.timeout(self.settings.agent_timeout_s):
                with self.tracing.span(f"call {fields['target']}", traceparent, "CLIENT") as tp:
                    status, body = await self._post(url, fields, tp)
        except TimeoutError as exc:
            await self.store.count_call("timeout")
            raise AgentCallTransient("agent timed out (no full answer in time)") from exc
        except httpx.TimeoutException as exc:
            await self.store.count_call("timeout")
            raise AgentCallTransient(f"agent timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            await self.store.count_call("unreachable")
            raise AgentCallTransient(f"agent unreachable ({type(exc).__name__}: {exc})") from exc
        except AgentAnswerTooLarge:
            await self.store.count_call("too_large")
            await self._fail(execution_id, int(attempt), "agent result is too large")
            return
        except DestinationRefused as exc:
            await self.store.count_call("destination_refused")
            await self._fail(execution_id, int(attempt), str(exc))
            return
        await self.store.count_call(_outcome_of(status))
        if status == 202:
            if await self.store.await_callback(execution_id, attempt):
                logger.info("awaiting callback execution_id=%s", execution_id)
            return
        if 200 <= status < 300:
            await self._succeed(execution_id, attempt, body)
        else:
            text = body[:AGENT_ERROR_BODY_CHARS].decode(errors="replace")
            if not 400 <= status < 500:
                raise AgentCallTransient(f"agent answered {status}: {text}")
            await self._fail(execution_id, int(attempt), f"agent answered {status}: {text}")

    async def _post(
        self, url: str, fields: dict[str, str], traceparent: str | None
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
        async with self.http.stream(
            "POST", url, content=fields["input"].encode(), headers=headers
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise AgentAnswerTooLarge
                chunks.append(chunk)
        return response.status_code, b"".join(chunks)

    async def _succeed(self, execution_id: str, attempt: str, body: bytes) -> None:
        try:
            result = _as_json(body)
        except RecursionError:
            await self._fail(execution_id, int(attempt), "agent answer is nested too deep to read")
            return
        now = now_ms()
        transition = await self.store.finish(
            execution_id, Status.SUCCEEDED, rfc3339(now), now, result=result, attempt=attempt
        )
        logger.info("succeeded execution_id=%s (%s)", execution_id, transition.outcome)

    async def _fail(self, execution_id: str, attempt: int | None, error: str) -> None:
        now = now_ms()
        transition = await self.store.finish(
            execution_id,
            Status.FAILED,
            rfc3339(now),
            now,
            error=truncate(error),
            attempt=None if attempt is None else str(attempt),
        )
        logger.warning("failed execution_id=%s (%s): %s", execution_id, transition.outcome, error)

    async def sweep(self) -> int:
        """Turn overdue non-terminal executions into `timeout`; returns how many changed."""
        changed = 0
        now = now_ms()
        for execution_id in await self.store.overdue(now, SWEEP_BATCH):
            try:
                changed += await self._time_out(execution_id, now)
            except REDIS_AWAY:
                raise
            except Exception as exc:
                # One record that crashes the sweep must not keep it from the others.
                await self._crashed(execution_id, exc)
        await self.store.prune_indexes(now, SWEEP_BATCH)
        return changed

    async def _time_out(self, execution_id: str, now: int) -> int:
        transition = await self.store.finish(
            execution_id,
            Status.TIMEOUT,
            rfc3339(now),
            now,
            error="execution deadline exceeded",
            only_if_overdue=True,
        )
        if transition.outcome is Outcome.OK:
            logger.warning("timeout execution_id=%s", execution_id)
            return 1
        if transition.outcome is Outcome.MISSING:
            await self.store.forget_deadline(execution_id)
        return 0


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
