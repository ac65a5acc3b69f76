"""Delivering an execution's webhook: one attempt per run of the arq delivery job.

The body is built from the stored status document when the attempt starts, encoded once, and
those exact bytes are signed and sent. Any 2xx delivers; 410 and a refused destination stop at
once; anything else is retried after the next wait of the schedule (or the receiver's
`Retry-After`, capped), until the schedule runs out and the delivery is dead.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
import msgspec

from agentfield_arq.core.guard import GuardedBackend, GuardedTransport, Policy
from agentfield_arq.core.outbox import Attempt, Outbox, Outcome
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.tracing import TRACEPARENT, Tracing
from agentfield_arq.core.webhooks import RESERVED_HEADERS
from agentfield_arq.kernel.codec import encode, now_ms
from agentfield_arq.kernel.errors import DestinationRefused
from agentfield_arq.kernel.models import Execution, WebhookPayload
from agentfield_arq.kernel.signing import signature_headers
from agentfield_arq.kernel.status import Status

logger = logging.getLogger(__name__)

ERROR_BODY_CHARS = 200
SPARE_JOB_TRIES = 3
USER_AGENT = "agentfield-arq-webhooks/1"
NULL = msgspec.Raw(b"null")
_doc_decoder = msgspec.json.Decoder(Execution[msgspec.Raw])


def retry_delay_s(
    round_attempt: int,
    delays: Sequence[float],
    jitter: float,
    retry_after_s: float | None = None,
    retry_after_max_s: float = 3600.0,
    rng: random.Random | None = None,
) -> float | None:
    """Wait before the next attempt after attempt `round_attempt` (1-based) failed; None when
    the schedule is used up. Jitter spreads a burst of failures by +/- `jitter` of the wait; a
    receiver's Retry-After can lengthen the wait, up to `retry_after_max_s`, never shorten it."""
    if round_attempt > len(delays):
        return None
    delay = delays[round_attempt - 1] * (1.0 + jitter * (2.0 * (rng or random).random() - 1.0))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, retry_after_max_s))
    return max(0.0, delay)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked by a `Retry-After` header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def build_body(attempt: Attempt) -> bytes:
    """The JSON body of the delivery, from the execution's stored status document."""
    doc = _doc_decoder.decode(attempt.doc)
    succeeded = doc.status == Status.SUCCEEDED
    payload = WebhookPayload(
        event=attempt.event_type,
        execution_id=doc.execution_id,
        workflow_id=doc.run_id,
        run_id=doc.run_id,
        status=doc.status,
        target=doc.target,
        type=doc.type,
        duration_ms=doc.duration_ms,
        result=(NULL if doc.result is msgspec.UNSET else doc.result)
        if succeeded
        else msgspec.UNSET,
        error_message=None if succeeded else doc.error,
        timestamp=doc.completed_at or doc.started_at or doc.created_at,
        progress=doc.progress,
        progress_message=doc.progress_message,
    )
    return encode(payload)


def request_headers(attempt: Attempt, body: bytes, timestamp: int) -> dict[str, str]:
    """The caller's headers, then ours (content type and signatures), which always win."""
    headers = {k: v for k, v in attempt.headers.items() if k.lower() not in RESERVED_HEADERS}
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = USER_AGENT
    headers.update(signature_headers(attempt.secret, attempt.webhook_id, timestamp, body))
    return headers


class Answer(msgspec.Struct, kw_only=True):
    """What one attempt got back: an HTTP status, or an error without one."""

    http_status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    final: bool = False

    @property
    def delivered(self) -> bool:
        """Any 2xx is a delivery."""
        return self.http_status is not None and 200 <= self.http_status < 300


def job_max_tries(settings: Settings) -> int:
    """arq tries of a delivery job: one per attempt, plus a few runs that make none. The job's
    last try never schedules another, so arq never drops a delivery that is still pending."""
    return settings.webhook_max_attempts + SPARE_JOB_TRIES


def webhook_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The HTTP client of deliveries: SSRF-guarded, redirects not followed (a redirect could
    point anywhere), no proxies from the environment. A `transport` (tests) replaces the
    guarded one, guard included."""
    if transport is None:
        policy = Policy(settings.webhook_block_private, settings.webhook_allowed_hosts)
        transport = GuardedTransport(
            GuardedBackend(policy), httpx.Limits(max_connections=settings.worker_concurrency)
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(settings.webhook_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


class Deliverer:
    """Makes one delivery attempt per call and records it; holds no state between attempts."""

    def __init__(
        self,
        outbox: Outbox,
        http: httpx.AsyncClient,
        settings: Settings,
        rng: random.Random | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.outbox = outbox
        self.http = http
        self.settings = settings
        self.rng = rng
        self.tracing = tracing or Tracing()

    async def deliver(self, execution_id: str, last_try: bool = False) -> float | None:
        """One attempt; returns seconds to wait before the next one, or None when settled."""
        attempt = await self.outbox.begin(execution_id, now_ms())
        if isinstance(attempt, str):
            logger.info("no webhook attempt execution_id=%s: %s", execution_id, attempt)
            return None
        clock = time.monotonic()
        answer = await self.send(attempt)
        duration_ms = int((time.monotonic() - clock) * 1000)
        return await self._settle(attempt, answer, duration_ms, last_try)

    async def notify(self, execution_id: str, event: str, bucket: str) -> None:
        """One attempt at a `started` or `progress` notice, with the document as it is now;
        never retried nor recorded (the `completed` delivery is the one that is)."""
        attempt = await self.outbox.notice(execution_id, event, bucket)
        if attempt is None:
            logger.info("no webhook notice execution_id=%s: gone", execution_id)
            return
        clock = time.monotonic()
        answer = await self.send(attempt)
        duration_ms = int((time.monotonic() - clock) * 1000)
        host = urlsplit(attempt.url).hostname
        if answer.delivered:
            logger.info(
                "webhook notice %s delivered execution_id=%s host=%s in %dms",
                event,
                execution_id,
                host,
                duration_ms,
            )
        else:
            logger.warning(
                "webhook notice %s failed execution_id=%s host=%s: %s",
                event,
                execution_id,
                host,
                answer.error,
            )

    async def send(self, attempt: Attempt) -> Answer:
        """Build, sign and POST the body; every failure becomes an Answer, never an exception,
        so that an attempt is always recorded rather than left `delivering`."""
        try:
            body = build_body(attempt)
        except msgspec.MsgspecError as exc:
            return Answer(error=f"the stored execution is unreadable: {exc}", final=True)
        headers = request_headers(attempt, body, int(time.time()))
        timeout_s = self.settings.webhook_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                name = f"webhook {attempt.event_type}"
                with self.tracing.span(name, attempt.traceparent, "CLIENT") as traceparent:
                    if traceparent is not None:
                        headers[TRACEPARENT] = traceparent
                    return await self._post(attempt.url, body, headers)
        except TimeoutError:
            return Answer(error=f"no answer within {timeout_s:g}s")
        except DestinationRefused as exc:
            return Answer(error=str(exc), final=True)
        except httpx.HTTPError as exc:
            return Answer(error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        except Exception as exc:
            # A bug of ours: retrying it would only repeat it. It ends the delivery (dead,
            # so that it can be redriven once fixed).
            logger.exception("webhook attempt crashed execution_id=%s", attempt.execution_id)
            return Answer(error=f"internal error: {type(exc).__name__}", final=True)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        cap = self.settings.webhook_max_response_bytes
        head = b""
        async with self.http.stream("POST", url, content=body, headers=headers) as response:
            # Read the answer only up to the cap: a receiver cannot make a worker buffer a
            # large body (the connection is dropped instead of drained).
            async for chunk in response.aiter_bytes():
                head += chunk[: cap - len(head)]
                if len(head) >= cap:
                    break
        status = response.status_code
        if 200 <= status < 300:
            return Answer(http_status=status)
        text = head[:ERROR_BODY_CHARS].decode(errors="replace").strip()
        error = f"receiver answered {status}" + (f": {text}" if text else "")
        if status == 410:
            return Answer(http_status=status, error=f"{error} (gone: not retried)", final=True)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Answer(http_status=status, error=error, retry_after_s=retry_after)

    async def _settle(
        self, attempt: Attempt, answer: Answer, duration_ms: int, last_try: bool
    ) -> float | None:
        s = self.settings
        delay = None
        if answer.delivered:
            outcome = Outcome.DELIVERED
        else:
            if not answer.final and not last_try:
                delay = retry_delay_s(
                    attempt.round_attempt,
                    s.webhook_retry_delays_s,
                    s.webhook_jitter,
                    answer.retry_after_s,
                    s.webhook_retry_after_max_s,
                    self.rng,
                )
            outcome = Outcome.DEAD if delay is None else Outcome.RETRY
        now = now_ms()
        recorded = await self.outbox.record(
            attempt,
            outcome,
            now,
            duration_ms=duration_ms,
            http_status=answer.http_status,
            error=answer.error,
            next_attempt_ms=None if delay is None else now + int(delay * 1000),
        )
        _log(attempt, outcome, answer, duration_ms, delay, recorded)
        return delay if recorded else None


def _log(
    attempt: Attempt,
    outcome: Outcome,
    answer: Answer,
    duration_ms: int,
    delay: float | None,
    recorded: bool,
) -> None:
    # The host only: the URL's path and query may carry the receiver's own tokens.
    host = urlsplit(attempt.url).hostname
    where = f"execution_id={attempt.execution_id} attempt={attempt.attempt} host={host}"
    if not recorded:
        logger.warning("webhook attempt superseded %s", where)
    elif outcome is Outcome.DELIVERED:
        logger.info(
            "webhook delivered %s status=%s in %dms", where, answer.http_status, duration_ms
        )
    elif outcome is Outcome.RETRY:
        logger.warning("webhook attempt failed %s: %s; next in %.1fs", where, answer.error, delay)
    else:
        logger.warning("webhook dead %s: %s", where, answer.error)
