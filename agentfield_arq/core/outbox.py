"""Webhook deliveries in Redis: each step of a delivery is one Lua script (see lua/webhook_*).

A delivery is created by finish.lua when its execution becomes terminal. Its hash
`exec:{id}:webhook` holds the state (`pending` -> `delivering` -> `delivered`, back to `pending`
for a retry, or `failed` when dead), the stable webhook-id and the attempt counts; the list
`exec:{id}:webhook:events` holds the newest attempt records; `exec:{id}:webhook:view` is the JSON
that reads splice into the status document. All expire with the execution.
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import delivery_job_id, delivery_job_payload
from agentfield_arq.core.keys import WEBHOOK_EVENTS_MAX, Keys, safe_id
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import decode, rfc3339, text
from agentfield_arq.kernel.errors import (
    ExecutionNotFound,
    ExecutionNotTerminal,
    WebhookBusy,
    WebhookNotFound,
)
from agentfield_arq.kernel.models import DeadDelivery, DeadPage, Redriven

_DEAD_FIELDS = ("webhook_id", "event_type", "attempts", "last_error", "last_http_status",
                "failed_at")  # fmt: skip
_EXEC_FIELDS = ("webhook_url", "target", "status")
_NOTICE_FIELDS = ("webhook_url", "webhook_headers", "traceparent")


def webhook_id(execution_id: str) -> str:
    """The Standard Webhooks `webhook-id` of an execution's delivery: stable across retries."""
    return f"msg_{execution_id.removeprefix('exec_')}"


class Attempt(msgspec.Struct, kw_only=True):
    """What one delivery attempt needs: its numbers, the stored document and the registration."""

    execution_id: str
    attempt: int
    round_attempt: int
    webhook_id: str
    event_type: str
    doc: bytes
    url: str
    secret: str | None
    headers: dict[str, str]
    # The execution's trace context (core/tracing.py), sent on as the request's `traceparent`.
    traceparent: str | None = None


class Outcome(enum.StrEnum):
    """How an attempt ended, as `record` stores it."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


class Outbox:
    """Reads and atomic writes of webhook deliveries."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self.max_attempts = settings.webhook_max_attempts
        self._begin = load_script(redis, "webhook_begin")
        self._record = load_script(redis, "webhook_record")
        self._redrive = load_script(redis, "webhook_redrive")

    def _cutoff_ms(self, now_ms: int) -> int:
        """Dead-index entries older than this belong to expired executions."""
        return now_ms - self.settings.retention_s * 1000

    async def begin(self, execution_id: str, now_ms: int) -> Attempt | str:
        """Start the next attempt; returns it, or why there is none (`done`, `missing`)."""
        k = self.keys
        reply = await self._begin(
            keys=[
                k.webhook(execution_id),
                k.webhook_events(execution_id),
                k.webhook_view(execution_id),
                k.execution(execution_id),
                k.status_doc(execution_id),
                k.dead_webhooks,
                k.webhook_secret(execution_id),
            ],
            args=[
                rfc3339(now_ms),
                now_ms,
                WEBHOOK_EVENTS_MAX,
                self.max_attempts,
                execution_id,
                self._cutoff_ms(now_ms),
            ],
        )
        if text(reply[0]) != "ok":
            return " ".join(text(part) for part in reply)
        attempt, round_attempt, webhook_id, event_type, doc, url, secret, headers, trace = reply[1:]
        return Attempt(
            execution_id=execution_id,
            attempt=int(attempt),
            round_attempt=int(round_attempt),
            webhook_id=text(webhook_id),
            event_type=text(event_type),
            doc=doc,
            url=text(url),
            secret=text(secret) or None,
            headers=decode(headers, dict[str, str]),
            traceparent=text(trace) or None,
        )

    async def notice(self, execution_id: str, event: str, bucket: str) -> Attempt | None:
        """A `started` or `progress` notice of the execution as it stands (a read: nothing of a
        notice is stored), or None once the execution or its webhook is gone."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(k.execution(execution_id), list(_NOTICE_FIELDS))
            pipe.get(k.status_doc(execution_id))
            pipe.get(k.webhook_secret(execution_id))
            (url, headers, trace), doc, secret = await pipe.execute()
        if url is None or doc is None:
            return None
        return Attempt(
            execution_id=execution_id,
            attempt=1,
            round_attempt=1,
            webhook_id=f"{webhook_id(execution_id)}_{event}_{bucket}",
            event_type=f"execution.{event}",
            doc=doc,
            url=text(url),
            secret=text(secret) if secret else None,
            headers=decode(headers or b"{}", dict[str, str]),
            traceparent=text(trace) if trace else None,
        )

    async def record(
        self,
        attempt: Attempt,
        outcome: Outcome,
        now_ms: int,
        *,
        duration_ms: int,
        http_status: int | None = None,
        error: str | None = None,
        next_attempt_ms: int | None = None,
    ) -> bool:
        """Store the attempt's outcome; False if the attempt was no longer the current one."""
        k = self.keys
        execution_id = attempt.execution_id
        reply = await self._record(
            keys=[
                k.webhook(execution_id),
                k.webhook_events(execution_id),
                k.webhook_view(execution_id),
                k.dead_webhooks,
                k.stats_webhook_attempts,
            ],
            args=[
                attempt.attempt,
                outcome,
                rfc3339(now_ms),
                now_ms,
                WEBHOOK_EVENTS_MAX,
                "" if http_status is None else http_status,
                error or "",
                duration_ms,
                "" if next_attempt_ms is None else rfc3339(next_attempt_ms),
                execution_id,
                self._cutoff_ms(now_ms),
            ],
        )
        return text(reply[0]) == "ok"

    async def redrive(self, execution_id: str, now_ms: int) -> Redriven:
        """Send the webhook again (same webhook-id); see webhook_redrive.lua for the rules."""
        if not safe_id(execution_id):
            raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")
        k = self.keys
        job_id = delivery_job_id(execution_id)
        reply = await self._redrive(
            keys=[
                k.execution(execution_id),
                k.webhook(execution_id),
                k.webhook_events(execution_id),
                k.webhook_view(execution_id),
                k.dead_webhooks,
                k.queue,
                k.arq_job(job_id),
                k.arq_in_progress(job_id),
            ],
            args=[
                now_ms,
                job_id,
                delivery_job_payload(execution_id, now_ms),
                self.settings.retention_s * 1000,
            ],
        )
        state = text(reply[0])
        shown = execution_id[:100]
        if state == "missing":
            raise ExecutionNotFound(f"execution '{shown}' not found")
        if state == "no_webhook":
            raise WebhookNotFound(f"execution '{shown}' has no webhook")
        if state == "not_terminal":
            raise ExecutionNotTerminal(
                f"execution '{shown}' is {text(reply[1])}; its webhook is sent when it ends"
            )
        if state == "busy":
            raise WebhookBusy(
                f"the last delivery of execution '{shown}' is still being closed; try again"
            )
        return Redriven(
            execution_id=execution_id,
            webhook_id=text(reply[2]),
            webhook_status=text(reply[1]),
        )

    async def dead(self, limit: int, cursor: str | None = None) -> DeadPage:
        """A page of dead deliveries, newest first, in two round trips whatever the page size."""
        entries, next_cursor = await self.dead_entries(limit, cursor)
        return DeadPage(deliveries=[entry for _, entry in entries], next_cursor=next_cursor)

    async def dead_entries(
        self, limit: int, cursor: str | None = None
    ) -> tuple[list[tuple[str, DeadDelivery]], str | None]:
        """`dead`'s page with each delivery's member of the dead index (the cursors' form),
        for merging the pages of several Redis (core/routing.py `merged_page`)."""
        upper = f"({cursor}" if cursor else "+"
        members = [
            text(m)
            for m in await self.redis.zrevrangebylex(
                self.keys.dead_webhooks, upper, "-", start=0, num=limit + 1
            )
        ]
        more = len(members) > limit
        members = members[:limit]
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                execution_id = member.partition(":")[2]
                pipe.hmget(self.keys.webhook(execution_id), list(_DEAD_FIELDS))
                pipe.hmget(self.keys.execution(execution_id), list(_EXEC_FIELDS))
            replies: list[Any] = await pipe.execute()
        entries = []
        for member, webhook, execution in zip(members, replies[::2], replies[1::2], strict=True):
            entry = _dead_entry(member.partition(":")[2], webhook, execution)
            if entry is not None:  # None: the record expired or was redriven meanwhile
                entries.append((member, entry))
        return entries, members[-1] if more else None


def _dead_entry(execution_id: str, webhook: list[Any], execution: list[Any]) -> DeadDelivery | None:
    w = dict(zip(_DEAD_FIELDS, (None if v is None else text(v) for v in webhook), strict=True))
    e = dict(zip(_EXEC_FIELDS, (None if v is None else text(v) for v in execution), strict=True))
    if w["webhook_id"] is None or w["failed_at"] is None or e["webhook_url"] is None:
        return None
    return DeadDelivery(
        execution_id=execution_id,
        webhook_id=w["webhook_id"],
        event_type=w["event_type"] or "",
        url=_without_query(e["webhook_url"]),
        target=e["target"] or "",
        status=e["status"] or "",
        attempts=int(w["attempts"] or 0),
        last_error=w["last_error"] or None,
        last_http_status=int(w["last_http_status"]) if w["last_http_status"] else None,
        failed_at=w["failed_at"],
    )


def _without_query(url: str) -> str:
    """Receivers often put a token in the query; the dead list (no auth) shows the rest."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
