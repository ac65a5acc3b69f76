"""The execution routes: execute, read, list, follow, cancel, re-run; dead webhooks."""

from __future__ import annotations

from typing import Any

from agentfield_arq.api import dashboard, events, executions, listing, webhooks
from agentfield_arq.api.access import Access
from agentfield_arq.api.openapi import PATH_SCHEMAS, Operation, Query
from agentfield_arq.api.operations.common import BODY, DURABLE, EXECUTIONS_BY_ID, PREFIX, REDIS
from agentfield_arq.kernel.errors import (
    ExecutionExpired,
    ExecutionNotFound,
    ExecutionNotTerminal,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidTarget,
    InvalidTransition,
    NodeUnavailable,
    QueueFull,
    RunNotFound,
    SyncTimeout,
    TargetNotFound,
    TooManyIds,
    WebhookBusy,
    WebhookNotFound,
)
from agentfield_arq.kernel.models import (
    Activity,
    BatchStatusRequest,
    CallbackRequest,
    CancelRequest,
    DeadPage,
    ExecuteRequest,
    Execution,
    ExecutionPage,
    History,
    NoteAdded,
    NoteList,
    NoteRequest,
    Principal,
    Redriven,
    Restarted,
    RestartRequest,
    Run,
    Submitted,
    SyncResult,
)
from agentfield_arq.kernel.status import Status

_DEAD_QUERY = (
    Query(
        "limit",
        "page size",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": webhooks.MAX_PAGE,
            "default": webhooks.DEFAULT_PAGE,
        },
    ),
    Query(
        "cursor",
        "the `next_cursor` of the previous page",
        {"type": "string", "maxLength": webhooks.MAX_CURSOR},
    ),
)

_EXECUTE_ERRORS = (
    *BODY,
    InvalidTarget,
    IdempotencyKeyReused,
    TargetNotFound,
    ExecutionExpired,
    QueueFull,
    NodeUnavailable,
)
_GONE = (ExecutionNotFound, ExecutionExpired)
_SSE = (
    "`text/event-stream`: each event's `id` is its stream id, its name the status (or `state`, "
    "`gap`, `cutoff`), its data JSON; comment lines are heartbeats"
)
# As strict as api/listing.py checks them (the fuzz run draws from these). `since` and `until`
# are documented as unix ms, the plain subset of what is accepted (an RFC 3339 time too).
_UNIX_MS = {"type": "string", "pattern": "^[0-9]{1,15}$"}
_LIST_QUERY = (
    Query("status", "only executions now in this status", {"enum": [str(s) for s in Status]}),
    Query("target", "only executions of this target (`node_id.name`)", PATH_SCHEMAS["target"]),
    Query("node", "only executions of this node's targets", PATH_SCHEMAS["node_id"]),
    Query("run_id", "only executions of this run", PATH_SCHEMAS["run_id"]),
    Query("parent", "only the children of this execution id", PATH_SCHEMAS["execution_id"]),
    Query("since", "created at or after: unix ms (or an RFC 3339 time)", _UNIX_MS),
    Query("until", "created at or before: unix ms (or an RFC 3339 time)", _UNIX_MS),
    Query(
        "limit",
        "page size",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": listing.MAX_PAGE,
            "default": listing.DEFAULT_PAGE,
        },
    ),
    Query("cursor", "the `next_cursor` of the previous page", PATH_SCHEMAS["execution_id"]),
)
# A request header the execute routes read (checked as core/execution.py checks it). The event
# routes' Last-Event-ID is described in their summaries instead: a fuzzer takes any header value
# its pattern does not rule out as valid, and the route answers a malformed one 400.
_IDEMPOTENCY_KEY = Query(
    "Idempotency-Key",
    "the same key with the same request within its lifetime answers the first execution "
    "(`Idempotent-Replayed: true`); with another request, `422 idempotency_key_reused`",
    {"type": "string", "pattern": "^[!-~]([ -~]{0,254}[!-~])?$"},
    location="header",
)


OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        f"{PREFIX}/execute/async/{{target}}",
        executions.execute_async,
        "Queue an execution",
        {202: ("queued; durable before this answer", Submitted)},
        body=ExecuteRequest,
        query=(_IDEMPOTENCY_KEY,),
        errors=(*_EXECUTE_ERRORS, *DURABLE),
        access=Access.CALLER,
        express=True,
    ),
    Operation(
        "POST",
        f"{PREFIX}/execute/{{target}}",
        executions.execute_sync,
        "Run an execution and wait for its end",
        {200: ("terminal", SyncResult)},
        body=ExecuteRequest,
        query=(_IDEMPOTENCY_KEY,),
        errors=(*_EXECUTE_ERRORS, *DURABLE, SyncTimeout),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/batch-status",
        executions.batch_status,
        "Many executions in one call; an unknown id's status is `not_found`",
        {200: ("an object keyed by execution id", EXECUTIONS_BY_ID)},
        body=BatchStatusRequest,
        errors=(*BODY, TooManyIds, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/note",
        executions.add_note,
        "An agent's note on the execution its X-Execution-ID names (AgentField's app.note)",
        {200: ("stored", NoteAdded)},
        body=NoteRequest,
        errors=(*BODY, ExecutionNotFound, *REDIS),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}/notes",
        executions.list_notes,
        "An execution's notes, oldest first",
        {200: ("the notes", NoteList)},
        errors=(ExecutionNotFound, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions",
        listing.list_executions,
        "Executions, newest first, filtered (a key other than an admin's: those it submitted); "
        "a page may be short and still have a next one",
        {200: ("one page", ExecutionPage)},
        query=_LIST_QUERY,
        errors=(InvalidRequest, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}/events",
        events.execution_events,
        "One execution's lifecycle as server-sent events (resumable with Last-Event-ID); "
        "ends after its terminal event",
        {200: (_SSE, None)},
        errors=(InvalidRequest, *_GONE, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/events",
        events.all_events,
        "Every execution's lifecycle as server-sent events, filtered (a key other than an "
        "admin's: those it submitted; resumable with Last-Event-ID)",
        {200: (_SSE, None)},
        query=tuple(q for q in _LIST_QUERY if q.name in ("status", "target", "run_id")),
        errors=(InvalidRequest, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/runs/{{run_id}}",
        listing.get_run,
        "A run's executions as a tree, with statuses and timings (a key other than an "
        "admin's: those it submitted)",
        {200: ("the run", Run)},
        errors=(RunNotFound, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}",
        executions.get_one,
        "One execution; with `wait`, answered when it ends (or when the wait runs out)",
        {200: ("the execution", Execution)},
        query=(
            Query(
                "wait",
                "seconds to wait for the end before answering",
                {"type": "integer", "minimum": 0, "maximum": executions.MAX_WAIT_S, "default": 0},
            ),
        ),
        errors=(InvalidRequest, *_GONE, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/status",
        executions.callback,
        "An agent reports an execution's progress or outcome",
        {200: ("the execution", Execution)},
        body=CallbackRequest,
        errors=(*BODY, ExecutionNotFound, InvalidTransition, *DURABLE),
        access=Access.REPORT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/cancel",
        executions.cancel_one,
        "Cancel an execution that has not ended, its agent told, its descendants too",
        {200: ("the execution, cancelled", Execution)},
        body=CancelRequest,
        body_required=False,
        errors=(*BODY, *_GONE, InvalidTransition, *DURABLE),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/retry",
        executions.retry_one,
        "Run a finished execution again, as a new execution linked by `retry_of`",
        {202: ("the new execution, queued", Submitted)},
        errors=(
            *_GONE,
            ExecutionNotTerminal,
            TargetNotFound,
            InvalidTransition,
            QueueFull,
            NodeUnavailable,
            *DURABLE,
        ),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/restart",
        executions.restart_one,
        "Submit an ended execution again as a new execution in a new run",
        {202: ("the new execution, queued", Restarted)},
        body=RestartRequest,
        body_required=False,
        errors=(*BODY, ExecutionNotFound, ExecutionNotTerminal, TargetNotFound, QueueFull, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/webhook/retry",
        webhooks.retry,
        "Send an execution's webhook again (same webhook-id)",
        {202: ("queued for delivery", Redriven)},
        errors=(ExecutionNotFound, WebhookNotFound, ExecutionNotTerminal, WebhookBusy, *REDIS),
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}/input",
        dashboard.execution_input,
        "The input an execution was submitted with, as stored",
        {200: ("the input object", dict[str, Any])},
        errors=(*_GONE, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}/history",
        dashboard.execution_history,
        "An execution's lifecycle as stored (queued, each attempt, progress, its end), oldest "
        "first; kept as long as the execution",
        {200: ("the history", History)},
        errors=(*_GONE, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/activity",
        dashboard.activity,
        "The executions created in each minute of the last hour, by their status now",
        {200: ("sixty minutes, oldest first", Activity)},
        errors=REDIS,
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        f"{PREFIX}/whoami",
        dashboard.whoami,
        "The key this request was made with: its id, role and name",
        {200: ("the key", Principal)},
        errors=REDIS,
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/webhooks/dead",
        webhooks.dead,
        "Dead webhook deliveries, newest first",
        {200: ("one page", DeadPage)},
        query=_DEAD_QUERY,
        errors=(InvalidRequest, *REDIS),
        access=Access.ADMIN,
    ),
]
