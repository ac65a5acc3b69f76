"""Every shape on the wire, once: request bodies, answers and stored documents, as msgspec
Structs shared by the control plane, the agent SDK, the client and the OpenAPI document.

Shapes that carry a result are generic in it: the control plane reads `Execution[msgspec.Raw]`
(the stored JSON passes through untouched, however large), a caller reads `Execution` (the
result decoded). The Lua scripts write the stored status document; a contract test decodes what
each of them writes with these Structs, strictly.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from agentfield_arq.kernel import errors
from agentfield_arq.kernel.status import EXPIRED, NOT_FOUND, STATUS_WORDS, TERMINAL_STATUSES, Status
from agentfield_arq.kernel.targets import NAME, NODE_ID
from agentfield_arq.kernel.urls import BASE_URL_PATTERN

# What the OpenAPI document says of fields checked by code rather than by msgspec (with the
# messages of that code): exactly what is accepted, so that a generator drawing from the
# document finds neither a valid body refused nor an invalid one accepted.
NodeId = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": f"^{NODE_ID}$"})]
TargetName = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": f"^{NAME}$"})]
BaseUrl = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": BASE_URL_PATTERN})]
# JSON Schema's integer is any whole number, 5.0 included (see NodeRegistration.__post_init__).
InFlightCap = Annotated[
    int | float, msgspec.Meta(extra_json_schema={"type": "integer", "minimum": 1})
]
StatusWord = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(STATUS_WORDS)})]

R = TypeVar("R")

# ---------------------------------------------------------------------------- request bodies


class WebhookSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where and how to announce an execution's end (validated by `core.webhooks.validate`)."""

    url: str
    secret: str | None = None
    headers: dict[str, str] = {}
    # Which events to send, as Replicate's `webhook_events_filter`: `started`, `progress`
    # (throttled), `completed` (always sent, listed or not: the default is that alone).
    events: list[str] = []


class ExecuteRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of `POST /execute[/async]/{target}`.

    `webhook` is decoded loosely: an invalid webhook must not reject the execution.
    Unknown top-level fields are tolerated because AgentField's SDK may send more than these.
    """

    input: dict[str, Any]
    context: dict[str, Any] | None = None
    webhook: Any = None
    # Queue even if the node has been silent past its lease (else 503 node_unavailable).
    queue_if_unavailable: bool = False
    # This execution's limit on an inline agent call, replacing the node's and the default
    # (capped at the control plane's AGENT_MAX_TIMEOUT_S).
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None


class ExecuteBody(ExecuteRequest, kw_only=True, omit_defaults=True):
    """`ExecuteRequest` as the execute routes decode it: `input` is kept as the bytes the caller
    sent (checked to be a JSON object), stored and passed to the agent without being decoded and
    encoded again; a 1 MB input cost 12 ms of the API's CPU that way, 1.2 ms as bytes."""

    input: msgspec.Raw  # type: ignore[assignment]

    def __post_init__(self) -> None:
        raw = memoryview(self.input)
        if bytes(raw[:1]) != b"{":
            raise msgspec.ValidationError(f"Expected `object`, got `{_kind(raw)}` - at `$.input`")


# What a JSON value is, by its first byte (msgspec's names, as its own errors give them).
_JSON_KINDS = {b"[": "array", b'"': "str", b"t": "bool", b"f": "bool", b"n": "null"}


def _kind(raw: memoryview) -> str:
    first = bytes(raw[:1])
    if first in _JSON_KINDS:
        return _JSON_KINDS[first]
    return "float" if any(c in bytes(raw) for c in b".eE") else "int"


class CancelRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Body of `POST /executions/{id}/cancel` (optional): why, kept as the execution's error
    and passed to its agent and its descendants."""

    reason: str | None = None


class BatchStatusRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /executions/batch-status`."""

    execution_ids: list[str]


class CallbackRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of `POST /executions/{id}/status`, sent by agents; extra fields are tolerated.
    `execution_id` and `reasoner` are what AgentField's SDK sends too; they are not read."""

    status: StatusWord
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: str | None = None
    error_message: str | None = None
    duration_ms: int | float | None = None
    completed_at: str | None = None
    progress: Any = None
    # Text shown with the progress; typed loosely, so that another SDK's `message` of another
    # type cannot make its report undecodable (only a string is kept).
    message: Any = None
    # Sent by the SDKs, never read: any JSON is accepted, as before these were declared.
    execution_id: Any = None
    reasoner: Any = None


class TargetSpec(msgspec.Struct, kw_only=True):
    """One reasoner or skill as a node declares it; other fields are kept in the raw record."""

    id: TargetName
    input_schema: Any = None
    output_schema: Any = None
    tags: list[str] = []
    # Announced by the SDK when the function has a docstring; never read by the control plane.
    description: Any = msgspec.UNSET


class NodeRegistration(msgspec.Struct, kw_only=True):
    """Body of `POST /nodes/register`: AgentField's node record, unknown fields accepted (and
    kept: the registry stores the whole body)."""

    id: NodeId
    base_url: BaseUrl
    version: str = ""
    reasoners: list[TargetSpec] = []
    skills: list[TargetSpec] = []
    # Our own: the most calls in flight to this node the node wants, under the fleet's cap.
    max_in_flight: InFlightCap | None = None
    # Sent by the SDKs and kept in the stored record; never read, so any JSON is accepted.
    lifecycle_status: Any = None
    metadata: Any = None
    # One per agent process (AgentField's SDK sends it): a registration under a new one means
    # the node restarted, and what it accepted with 202 and never reported is handled by
    # `on_restart` ("redispatch" queues it again, "fail" ends it `failed`).
    instance_id: Annotated[str, msgspec.Meta(max_length=128)] = ""
    on_restart: Literal["redispatch", "fail"] = "redispatch"
    # The limit on an inline call to this node (else the control plane's default), and whether
    # a call that may have run (timed out, 5xx, dropped) is safe to repeat.
    call_timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    retry_safe: bool = False

    def __post_init__(self) -> None:
        """A whole `max_in_flight` spelled as a float (5.0) is that int; 5.5 is refused."""
        if isinstance(self.max_in_flight, float):
            if not self.max_in_flight.is_integer():
                raise ValueError("max_in_flight: must be a whole number")
            self.max_in_flight = int(self.max_in_flight)


class HeartbeatRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Optional body of `POST /nodes/{id}/heartbeat` (and of the lifecycle status update)."""

    status: str | None = None
    timestamp: str | None = None


class ShutdownRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Optional body of `POST /nodes/{id}/shutdown`: why the node goes away."""

    reason: str | None = None


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


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error answer: AgentField's `error`, a machine-readable `code`, and the ids of the
    execution it is about when there is one (a sync timeout, a submission Redis timed out on);
    agents add the `field` of invalid input; health's 503 says `status` "unhealthy", `redis`
    "down" and the `reason`; a 409 names the execution's `status`. The control plane always
    sends `error` and `code`; a reader tolerates answers of others that lack them."""

    error: str = ""
    code: str = ""
    execution_id: str | None = None
    # Not read by the client: typed loosely, so that another server's error body (a numeric
    # `status`, say) still decodes and keeps its `error` and `code`.
    run_id: Any = None
    status: Any = None
    field: Any = None
    redis: str | None = None
    reason: Any = None


class Submitted(msgspec.Struct, kw_only=True):
    """The 202 answer of execute async: the execution is queued and durable. The control plane
    sends every field (`webhook_error` only when the webhook was refused); a reader needs only
    `execution_id`."""

    execution_id: str
    run_id: str = ""
    workflow_id: str = ""
    status: str = Status.QUEUED
    target: str = ""
    type: str = ""
    created_at: str = ""
    enqueued_at: str = ""
    webhook_registered: bool = False
    webhook_error: str | msgspec.UnsetType = msgspec.UNSET


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


class ExecutionNote(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One note an agent wrote on an execution (`app.note`), as the document shows it."""

    message: str
    tags: list[str] = []
    timestamp: str = ""
    agent_node_id: str | None = None


class Execution(msgspec.Struct, Generic[R], kw_only=True):
    """An execution's state: the status document of GET, of batch-status (where an unknown id
    is `{"execution_id", "status": "not_found"}`), of the callback and cancel answers. The
    webhook fields appear once a terminal execution's delivery exists; `result` is UNSET
    unless the execution succeeded."""

    execution_id: str
    status: str
    run_id: str = ""
    target: str = ""
    type: str = ""
    created_at: str = ""
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    result: R | msgspec.UnsetType = msgspec.UNSET
    webhook_registered: bool = False
    webhook_status: str | None = None
    webhook_next_attempt_at: str | None = None
    webhook_events: list[WebhookEvent] = []
    # Only in batch-status answers, for a result too large to send there: it is left out
    # (`result` UNSET) and GET of the one execution reads it.
    result_truncated: bool = False
    result_size: int | None = None
    notes: list[ExecutionNote] = []
    parent_execution_id: str | None = None
    progress: Any = None
    progress_message: str | None = None
    retry_of: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the status is succeeded, failed, cancelled or timeout."""
        return self.status in TERMINAL_STATUSES

    @property
    def settled(self) -> bool:
        """True when waiting longer cannot change anything (terminal, unknown or expired id)."""
        return self.terminal or self.status in (NOT_FOUND, EXPIRED)

    def outcome(self) -> Any:
        """The result of a succeeded execution, as its agent returned it (None if it reported
        none); raises ExecutionError subclasses otherwise."""
        if self.status == Status.SUCCEEDED:
            return None if self.result is msgspec.UNSET else self.result
        if self.status == NOT_FOUND:
            raise errors.ExecutionNotFound(f"execution '{self.execution_id}' not found")
        if self.status == EXPIRED:
            raise errors.ExecutionExpired(f"execution '{self.execution_id}' has expired")
        kind = _FAILURES.get(self.status)
        if kind is None:
            raise errors.ClientError(f"execution {self.execution_id} is still {self.status}")
        raise kind(self.execution_id, self.status, self.error)


_FAILURES: dict[str, type[errors.ExecutionError]] = {
    Status.FAILED: errors.ExecutionFailed,
    Status.CANCELLED: errors.ExecutionCancelled,
    Status.TIMEOUT: errors.ExecutionTimedOut,
}


class ExecutionPage(msgspec.Struct, kw_only=True):
    """One page of `GET /executions`, newest first; pass `next_cursor` for the next page (None:
    no more). A page may hold fewer than `limit` executions and still have a next one, when
    the filters skipped many."""

    # Bare, so that the document names its component `Execution` (the API never decodes this).
    executions: list[Execution]  # type: ignore[type-arg]
    next_cursor: str | None = None


class RunNode(msgspec.Struct, kw_only=True):
    """One execution of a run tree, with its timings and the executions it called."""

    execution_id: str
    status: str
    target: str = ""
    parent_execution_id: str | None = None
    created_at: str = ""
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    children: list[RunNode] = []


class Run(msgspec.Struct, kw_only=True):
    """The answer of `GET /runs/{run_id}`: its executions as a tree (an execution whose parent
    is not in the run is a root). `status` is `running` while any execution has not ended, then
    `succeeded` if every one succeeded, else `failed`. `truncated`: the run has more than
    `count` executions and only the oldest are shown."""

    run_id: str
    status: str
    count: int
    truncated: bool = False
    roots: list[RunNode]


class SyncResult(msgspec.Struct, Generic[R], kw_only=True, omit_defaults=True):
    """The 200 answer of execute sync (AgentField names the failure `error_message` here)."""

    execution_id: str
    status: str
    run_id: str = ""
    result: R | msgspec.UnsetType = msgspec.UNSET
    error_message: str | None = None
    duration_ms: int | None = None
    finished_at: str | None = None
    webhook_registered: bool = False

    def execution(self, target: str) -> Execution[R]:
        """This answer in the common shape (its `error_message` and `finished_at` renamed)."""
        return Execution(
            execution_id=self.execution_id,
            status=self.status,
            run_id=self.run_id,
            target=target,
            result=self.result,
            error=self.error_message,
            completed_at=self.finished_at,
            duration_ms=self.duration_ms,
            webhook_registered=self.webhook_registered,
        )


class NodeRegistered(msgspec.Struct, kw_only=True):
    """The 201 answer of node registration."""

    success: bool
    message: str
    node_id: str
    resolved_base_url: str


class Acknowledged(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The answer of heartbeats, lifecycle updates, goodbyes, telemetry and logs."""

    success: bool
    message: str | None = None
    timestamp: str | None = None


class Node(NodeRegistration, kw_only=True):
    """A node as the registry shows it: its registration (all its fields, known or not) and
    what the control plane knows of it."""

    registered_at: str = ""
    last_heartbeat: str = ""
    # When the node counts as inactive unless it is heard from again (its lease).
    lease_expires_at: str = ""
    # The agent key owning the node id (its id, and its name if it has one); "" for none.
    owner: str = ""
    owner_name: str = ""
    status: str = ""
    health_status: str = ""
    agent_status: str = ""


class NodeList(msgspec.Struct, kw_only=True):
    """The answer of `GET /nodes`."""

    nodes: list[Node]
    count: int


class QueueDepth(msgspec.Struct, kw_only=True):
    """Jobs waiting in the queue, by kind (a worker takes them in due order)."""

    executions: int
    webhook_deliveries: int
    webhook_notices: int
    oldest_queued_s: float


class Health(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The 200 answer of `GET /health`; `/ready` and `?detail=1` add the counts."""

    status: str
    redis: str
    queue: QueueDepth | None = None
    workers_alive: int | None = None
    nodes_active: int | None = None


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
    # `execution.progress` (and others, once reported): the agent's last progress report.
    progress: Any = None
    progress_message: str | None = None


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


# ---------------------------------------------------------------------------- notes


class NoteRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /executions/note` (AgentField's `app.note`); the execution is the request's
    `X-Execution-ID`. The SDK's own `timestamp` (unix seconds) is not used: the control plane
    stamps the note when it stores it."""

    message: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    tags: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=20)
    ] = []
    timestamp: Any = None
    agent_node_id: str | None = None


class NoteAdded(msgspec.Struct, kw_only=True):
    """The answer of `POST /executions/note`, as the Go server sends it."""

    success: bool
    note: ExecutionNote
    message: str


class NoteList(msgspec.Struct, kw_only=True):
    """The answer of `GET /executions/{id}/notes`, oldest first."""

    execution_id: str
    notes: list[ExecutionNote]
    total: int


# ---------------------------------------------------------------------------- dashboard


class HistoryEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One step of an execution's stored history (lua/common.lua's `record_history` writes
    it): `n` numbers every step, `ms` is when (unix ms; `at` says it in RFC 3339 in answers),
    `id` the lifecycle stream entry's id (none for a claim of an already running execution
    and for `accepted`), `status` the entry's name (a status, `progress`, or `accepted`: the
    agent answered 202 and the execution waits for its callback). `attempt`: the attempt it belongs
    to; `worker`: who claimed it; `reason`: why an attempt was handed back; `message` and
    `progress`: a progress report's."""

    n: int
    ms: int
    status: str
    at: str = ""
    id: str | None = None
    attempt: int | None = None
    worker: str | None = None
    reason: str | None = None
    message: str | None = None
    progress: Any = None


class History(msgspec.Struct, kw_only=True):
    """The answer of `GET /executions/{id}/history`: its stored lifecycle, oldest first.
    `dropped`: steps left out after the first (a chatty execution keeps the newest);
    `last_event_id`: resume its event stream from there to miss nothing after."""

    execution_id: str
    entries: list[HistoryEntry]
    dropped: int = 0
    last_event_id: str | None = None


class ActivityMinute(msgspec.Struct, kw_only=True):
    """The executions created in one minute, counted by their status now."""

    at: str
    counts: dict[str, int]


class Activity(msgspec.Struct, kw_only=True):
    """The answer of `GET /activity`: the last hour, oldest minute first."""

    minutes: list[ActivityMinute]


class Principal(msgspec.Struct, kw_only=True):
    """The answer of `GET /whoami`: the key a request was made with (never the key itself)."""

    key_id: str
    role: str
    name: str = ""


# ---------------------------------------------------------------------------- restart


class RestartRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /executions/{id}/restart` (AgentField's `restart_execution`). `input` and
    `context` replace the source's; `scope`, `reuse` and `fork` are accepted, not applied."""

    scope: str = "workflow"
    reuse: str = "succeeded-before"
    fork: bool = False
    reason: str | None = None
    input: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


class Restarted(Submitted, kw_only=True):
    """The 202 answer of a restart: the new execution, and the one it restarts."""

    restarted_from: str = ""


# ---------------------------------------------------------------------------- approvals


class ApprovalRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /agents/{node}/executions/{id}/request-approval` (AgentField's
    `request_approval`, which `app.pause` sends): the approval's id and page, where to tell the
    agent the decision (under its registered base URL), and how long it may wait."""

    approval_request_id: str
    approval_request_url: str = ""
    callback_url: str = ""
    expires_in_hours: float = 72


class ApprovalRequested(msgspec.Struct, kw_only=True):
    """The answer of request-approval: the execution now waits."""

    approval_request_id: str
    approval_request_url: str
    execution_id: str
    status: str
    expires_at: str


class Approval(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The answer of approval-status (AgentField's `ApprovalStatusResponse`), and of approve
    and reject. `status`: pending, approved, rejected or expired."""

    execution_id: str
    approval_request_id: str
    status: str
    execution_status: str
    request_url: str | None = None
    requested_at: str | None = None
    expires_at: str | None = None
    responded_at: str | None = None
    feedback: str | None = None
    response: Any = None


class Decision(msgspec.Struct, kw_only=True):
    """Optional body of `POST /executions/{id}/approve` and `/reject`: what the person said."""

    feedback: str = ""
    response: dict[str, Any] | None = None


class DecisionNotice(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the control plane POSTs to the agent's approval callback (AgentField's SDK serves
    it at `/webhooks/approval` and resolves the waiting `app.pause` with it)."""

    execution_id: str
    approval_request_id: str
    decision: str
    feedback: str = ""
    response: dict[str, Any] | None = None


class AwaiterStatusRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /agents/{node}/executions/{id}/awaiter-status`: `waiting` while a child
    it awaits waits, `running` again after."""

    status: Literal["waiting", "running"]
    reason: str = ""
