"""Typed shapes: statuses, request bodies, and the records kept in Redis."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class Status(enum.StrEnum):
    """The lifecycle of an execution; the last four are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


TERMINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMEOUT})

_ALIASES = {
    "success": Status.SUCCEEDED,
    "successful": Status.SUCCEEDED,
    "completed": Status.SUCCEEDED,
    "complete": Status.SUCCEEDED,
    "done": Status.SUCCEEDED,
    "ok": Status.SUCCEEDED,
    "error": Status.FAILED,
    "failure": Status.FAILED,
    "errored": Status.FAILED,
    "canceled": Status.CANCELLED,
    "cancel": Status.CANCELLED,
    "timed_out": Status.TIMEOUT,
    "in_progress": Status.RUNNING,
    "processing": Status.RUNNING,
    "wait": Status.QUEUED,
    "waiting": Status.QUEUED,
}


def normalise_status(word: str) -> Status | None:
    """Map a status word as AgentField does (`completed` -> succeeded); None if unknown."""
    key = word.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return Status(key)
    except ValueError:
        return None


class TargetKind(enum.StrEnum):
    """What a target names on its node."""

    REASONER = "reasoner"
    SKILL = "skill"


# ---------------------------------------------------------------------------- request bodies


class WebhookSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where and how to announce an execution's end (validated by `webhooks.validate`)."""

    url: str
    secret: str | None = None
    headers: dict[str, str] = {}


class ExecuteRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /execute[/async]/{target}`.

    `webhook` is decoded loosely: an invalid webhook must not reject the execution.
    Unknown top-level fields are tolerated because AgentField's SDK may send more than these.
    """

    input: dict[str, Any]
    context: dict[str, Any] | None = None
    webhook: Any = None


class BatchStatusRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /executions/batch-status`."""

    execution_ids: list[str]


class CallbackRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /executions/{id}/status`, sent by agents; extra fields are tolerated."""

    status: str
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: str | None = None
    error_message: str | None = None
    duration_ms: int | float | None = None
    completed_at: str | None = None
    progress: Any = None


class TargetSpec(msgspec.Struct, kw_only=True):
    """One reasoner or skill as a node declares it; other fields are kept in the raw record."""

    id: str
    input_schema: Any = None
    output_schema: Any = None
    tags: list[str] = []


class NodeRegistration(msgspec.Struct, kw_only=True):
    """Body of `POST /nodes/register`: AgentField's node record, unknown fields accepted."""

    id: str
    base_url: str
    version: str = ""
    reasoners: list[TargetSpec] = []
    skills: list[TargetSpec] = []


class HeartbeatRequest(msgspec.Struct, kw_only=True):
    """Optional body of `POST /nodes/{id}/heartbeat`."""

    status: str | None = None
    timestamp: str | None = None


class TelemetryEvent(msgspec.Struct, kw_only=True):
    """Body of `POST /workflow/executions/events`; only a few fields are looked at."""

    execution_id: str | None = None
    status: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None


class ExecutionLogs(msgspec.Struct, kw_only=True):
    """Body of `POST /executions/{id}/logs` (AgentField's SDK): a batch of log records."""

    entries: list[dict[str, Any]] = []


# ---------------------------------------------------------------------------- answers


class Accepted(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The 202 answer of execute async."""

    execution_id: str
    run_id: str
    workflow_id: str
    status: str
    target: str
    type: str
    created_at: str
    enqueued_at: str
    webhook_registered: bool
    webhook_error: str | None = None


class SyncResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The 200 answer of execute sync."""

    execution_id: str
    run_id: str
    status: str
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error_message: str | None = None
    duration_ms: int | None = None
    finished_at: str | None = None
    webhook_registered: bool = False


class WebhookEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One delivery attempt as `webhook_events` shows it (the Lua scripts write it; clients
    read it, so every field has a default and newer fields do not break older readers)."""

    id: str = ""
    event_type: str = ""
    status: str = ""
    attempt: int | None = None
    http_status: int | None = None
    error_message: str | None = None
    duration_ms: int | None = None
    created_at: str = ""


class ExecutionDoc(msgspec.Struct, kw_only=True):
    """The stored status document as read back (the Lua scripts write it); the webhook fields
    appear once a terminal execution's delivery exists."""

    execution_id: str
    run_id: str
    status: str
    target: str = ""
    type: str = ""
    created_at: str = ""
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    webhook_registered: bool = False
    webhook_status: str | None = None
    webhook_next_attempt_at: str | None = None
    webhook_events: list[WebhookEvent] | None = None


# ---------------------------------------------------------------------------- webhooks


class WebhookPayload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The body POSTed to a webhook receiver, as AgentField sends it (plus `run_id`)."""

    event: str
    execution_id: str
    workflow_id: str
    run_id: str
    status: str
    target: str
    type: str
    duration_ms: int | None = None
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error_message: str | None = None
    timestamp: str


class DeadDelivery(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A delivery that ran out of attempts (or was refused or gone), as the dead list shows it."""

    execution_id: str
    webhook_id: str
    event_type: str
    url: str
    target: str
    status: str
    attempts: int
    last_error: str | None = None
    last_http_status: int | None = None
    failed_at: str


class DeadPage(msgspec.Struct, kw_only=True):
    """One page of `GET /webhooks/dead`, newest first; pass `next_cursor` for the next page."""

    deliveries: list[DeadDelivery]
    next_cursor: str | None = None


class Redriven(msgspec.Struct, kw_only=True):
    """The 202 answer of `POST /executions/{id}/webhook/retry`."""

    execution_id: str
    webhook_id: str
    webhook_status: str
