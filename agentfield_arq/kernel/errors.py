"""One exception tree for the whole package: control plane, SDK and client alike.

AgentFieldArqError
├── ConfigurationError          a setting is unknown or malformed (start-up only)
├── DestinationRefused          a webhook receiver's or agent's address is not allowed
├── InvalidSignature            a received webhook failed verification (`verify`)
├── AgentCallError              a worker's call to an agent gave no answer to record
│   ├── AgentNotReached         nothing was sent (node not live, connection refused): waited out
│   ├── AgentCallTransient      the agent refused before running (429, 502, 503): retried
│   └── AgentAnswerTooLarge     the answer is over the result cap: the execution fails
├── ApiError                    carries a snake_case `code` and, in HTTP_STATUS below, the
│   │                           status it is answered with (by the API and by agents alike);
│   │                           the client raises the class of the `code` it was answered
│   ├── InvalidRequest          400: a body, field, query parameter or header is wrong
│   │   ├── InvalidTarget       400: not `node_id.name`
│   │   ├── JsonTooDeep         400: a JSON body nests deeper than the configured limit
│   │   ├── TooManyIds          400: batch-status asked for more ids than allowed
│   │   ├── InvalidWebhook      400: a webhook block is unusable (the execution runs without it)
│   │   ├── InvalidBaseUrl      400: a node's base_url is not a plain http(s) URL
│   │   ├── IdempotencyKeyReused 422: an Idempotency-Key came back with another request
│   │   └── InvalidInput        422: an agent's input does not fit the target's signature
│   │       └── MalformedInput  400: an agent's input is not JSON at all
│   ├── NotFound                404
│   │   ├── ExecutionNotFound   404: no such execution id
│   │   ├── TargetNotFound      404: unknown node or reasoner/skill
│   │   ├── NodeNotFound        404: unknown node id
│   │   ├── RunNotFound         404: no execution of this run is kept
│   │   ├── WebhookNotFound     404: the execution has no webhook
│   │   ├── MemoryNotFound      404: no memory value under this key in the scopes looked at
│   │   └── ApprovalNotFound    404: the execution never asked for approval
│   ├── Unauthorized            401: no API key, or one that is unknown or revoked
│   ├── Forbidden               403: the key's role does not allow this
│   │   └── NodeOwned           403: the node id belongs to another agent key
│   ├── ExecutionExpired        410: the execution existed, its record is past retention
│   ├── InvalidTransition       409: a terminal execution cannot change again
│   │   ├── ExecutionNotTerminal 409: a webhook is only sent once its execution is terminal
│   │   └── WebhookBusy         409: the last delivery attempt is still being closed
│   ├── MemoryScopeFull         409: a memory scope holds as many keys or vectors as allowed
│   ├── RequestTimeout          408: the body did not arrive within the body timeout
│   ├── PayloadTooLarge         413: the body is over the configured cap
│   │   └── MemoryValueTooLarge 413: a memory value or vector is over its cap
│   ├── UnsupportedMediaType    415: a request body that is not `application/json`
│   ├── HostNotAllowed          421: the `Host` header names no host this API answers for
│   ├── RateLimited             429: the key sent more requests than its rate allows
│   │   └── KeyQueueFull        429: the key has as many unfinished executions as it may
│   ├── HeadersTooLarge         431: the request line and headers are over the limits
│   ├── TargetFailed            500: an agent's reasoner or skill raised (answered inline)
│   │   ├── ReasonerFailed      500
│   │   └── SkillFailed         500
│   ├── NotSupported            501: an AgentField route that agentfield-arq does not implement
│   ├── Unavailable             503: Redis does not answer
│   │   ├── NotReady            503: no worker is alive to take the work (`/ready`)
│   │   └── NotReplicated       503: the write reached no replica in time (REDIS_WAIT_REPLICAS)
│   ├── QueueFull               503: too many executions wait for a worker; retry later
│   ├── NodeUnavailable         503: the target's node has been silent past its lease
│   └── SyncTimeout             504: a sync execute reached its limit; the execution carries on
├── ClientError                 the client (or an agent's `app.call`) got no usable answer
│   ├── ControlPlaneUnreachable no HTTP answer: connection refused or reset, or a timeout
│   └── WaitTimeout             a wait ran out; the executions carry on and can be polled
└── ExecutionError              an execution ended without success (`execution_id`, `error`)
    ├── ExecutionFailed         it ended `failed`
    ├── ExecutionCancelled      it ended `cancelled`
    └── ExecutionTimedOut       it ended `timeout` (its deadline passed)
"""

from __future__ import annotations


class AgentFieldArqError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigurationError(AgentFieldArqError):
    """A setting is unknown or malformed; raised at start-up with the variable's name."""


class DestinationRefused(AgentFieldArqError):
    """A webhook receiver or an agent resolves to an address the connect policy refuses."""


class InvalidSignature(AgentFieldArqError, ValueError):
    """A webhook failed verification: missing headers, a stale timestamp or a wrong signature."""


class AgentCallError(AgentFieldArqError):
    """A worker's call to an agent ended without an answer that can be recorded as is."""


class AgentNotReached(AgentCallError):
    """Nothing reached the agent (its node is not live, the connection was refused or never
    made): the execution waits for the node without spending an attempt."""


class AgentCallTransient(AgentCallError):
    """The agent refused before running anything (429, 502, 503), or failed in a way its node
    declared safe to repeat: worth another attempt."""


class AgentAnswerTooLarge(AgentCallError):
    """The agent's answer is over the configured result cap."""


class ApiError(AgentFieldArqError):
    """An error with a machine-readable code, shown to callers as `{"error", "code"}`."""

    code = "internal_error"
    # The HTTP status a client was answered with; None when raised inside the control plane.
    status_code: int | None = None

    def __init__(self, message: str, *, retry_after_s: int | None = None, **details: str) -> None:
        super().__init__(message)
        self.message = message
        # Answered as the Retry-After header: when trying again may succeed.
        self.retry_after_s = retry_after_s
        # Extra fields of the error body (e.g. the `execution_id` of a sync timeout).
        self.details = details


class InvalidRequest(ApiError):
    """The request body, a field or a header is invalid."""

    code = "invalid_request"


class InvalidTarget(InvalidRequest):
    """The target is not of the form `node_id.name`."""

    code = "invalid_target"


class JsonTooDeep(InvalidRequest):
    """A JSON body nests arrays and objects deeper than `max_json_depth`."""

    code = "json_too_deep"


class TooManyIds(InvalidRequest):
    """A batch asked for more ids than the configured limit."""

    code = "too_many_ids"


class InvalidWebhook(InvalidRequest, ValueError):
    """The webhook block is unusable; the execution still runs without it (`webhook_error`)."""

    code = "invalid_webhook"


class InvalidBaseUrl(InvalidRequest, ValueError):
    """A node's `base_url` is not one unambiguous http(s) URL (see `kernel/urls.py`)."""

    code = "invalid_base_url"


class IdempotencyKeyReused(InvalidRequest):
    """An `Idempotency-Key` already used, within its lifetime, for another request (another
    target, body or header)."""

    code = "idempotency_key_reused"


class InvalidInput(InvalidRequest, ValueError):
    """An agent's input does not fit the target's signature; `field` names the culprit."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def status(self) -> int:
        """The HTTP status an agent answers this with (422, or 400 for a body that is not JSON)."""
        return http_status(self)


class MalformedInput(InvalidInput):
    """An agent's input is not JSON at all."""


class NotFound(ApiError):
    """Something named in the request does not exist."""

    code = "not_found"


class ExecutionNotFound(NotFound):
    """No execution has this id (or it has expired)."""

    code = "execution_not_found"


class TargetNotFound(NotFound):
    """The node is not registered, or has no reasoner or skill of that name."""

    code = "target_not_found"


class NodeNotFound(NotFound):
    """No node is registered under this id."""

    code = "node_not_found"


class RunNotFound(NotFound):
    """No execution of this run id is kept (none was made, or all have expired)."""

    code = "run_not_found"


class WebhookNotFound(NotFound):
    """The execution was submitted without a (valid) webhook."""

    code = "webhook_not_found"


class Unauthorized(ApiError):
    """No API key was sent, or it is unknown or revoked (answered with `WWW-Authenticate`)."""

    code = "unauthorized"


class Forbidden(ApiError):
    """The API key is valid but its role does not allow this operation."""

    code = "forbidden"


class NodeOwned(Forbidden):
    """The node id belongs to another agent key; nothing was changed."""

    code = "node_owned"


class RateLimited(ApiError):
    """The key sent more requests than its rate allows; retry after `Retry-After` seconds."""

    code = "rate_limited"
    # Always set: a 429 always says when to try again.
    retry_after_s: int

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, retry_after_s=retry_after_s)


class KeyQueueFull(RateLimited):
    """The key has as many unfinished executions as it may; retry once some have ended."""

    code = "key_queue_full"


class MemoryNotFound(NotFound):
    """No value is stored under this key in the scope asked (or in any scope looked at)."""

    code = "memory_not_found"


class ApprovalNotFound(NotFound):
    """The execution has not asked for approval, so there is nothing to decide or report."""

    code = "approval_not_found"


class MemoryScopeFull(ApiError):
    """The scope already holds its cap of keys (or vectors); delete some first."""

    code = "memory_scope_full"


class ExecutionExpired(ApiError):
    """The execution existed and ended, and its record is gone past retention."""

    code = "execution_expired"


class InvalidTransition(ApiError):
    """The execution is terminal and the update would change it."""

    code = "invalid_transition"


class ExecutionNotTerminal(InvalidTransition):
    """A webhook was asked to be sent again before its execution finished."""

    code = "execution_not_terminal"


class WebhookBusy(InvalidTransition):
    """The previous delivery attempt is still being closed by its worker; try again."""

    code = "webhook_busy"


class PayloadTooLarge(ApiError):
    """The request body is larger than the configured cap."""

    code = "payload_too_large"


class RequestTimeout(ApiError):
    """The request body did not arrive within `body_timeout_s`; the connection is closed."""

    code = "request_timeout"


class UnsupportedMediaType(ApiError):
    """A request body whose Content-Type is not `application/json`."""

    code = "unsupported_media_type"


class HostNotAllowed(ApiError):
    """The `Host` header names a host this API does not answer for (DNS rebinding guard)."""

    code = "host_not_allowed"


class HeadersTooLarge(ApiError):
    """The request line and headers are over `max_header_bytes`, or there are more than
    `max_headers` headers; answered by the HTTP protocol layer, which then closes."""

    code = "headers_too_large"


class MemoryValueTooLarge(PayloadTooLarge):
    """A memory value, key or vector is over its configured cap."""

    code = "memory_value_too_large"


class TargetFailed(ApiError):
    """A reasoner or skill raised, or returned something that is not JSON (answered inline)."""

    code = "target_failed"

    @staticmethod
    def of(kind: str, message: str) -> TargetFailed:
        """The error of a `reasoner` or a `skill`."""
        return ReasonerFailed(message) if kind == "reasoner" else SkillFailed(message)


class ReasonerFailed(TargetFailed):
    """A reasoner raised."""

    code = "reasoner_failed"


class SkillFailed(TargetFailed):
    """A skill raised."""

    code = "skill_failed"


class NotSupported(ApiError):
    """An AgentField route (DID, verifiable credentials...) that this control plane lacks."""

    code = "not_supported"


class Unavailable(ApiError):
    """A dependency (Redis) does not answer."""

    code = "unavailable"


class NotReady(Unavailable):
    """Redis answers, but no worker has been heard from: work would wait."""

    code = "not_ready"


class NotReplicated(Unavailable):
    """The primary took the write, but not `REDIS_WAIT_REPLICAS` replicas within the wait's
    timeout: it is not acknowledged, since a failover now could lose it."""

    code = "not_replicated"


class ClientError(AgentFieldArqError):
    """The client, or an agent's `app.call`, got no usable answer from the control plane."""


class ControlPlaneUnreachable(ClientError):
    """No HTTP answer at all. `request_sent` is False when the connection was never made, so
    that resending cannot duplicate anything."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class WaitTimeout(ClientError):
    """A wait ran out before these executions ended; they carry on and can still be polled."""

    def __init__(self, message: str, execution_ids: list[str]) -> None:
        super().__init__(message)
        self.execution_ids = execution_ids


class ExecutionError(AgentFieldArqError):
    """An execution ended without success; carries its id, terminal status and error."""

    def __init__(self, execution_id: str, status: str, error: str | None) -> None:
        super().__init__(f"execution {execution_id} {status}: {error or 'no error message'}")
        self.execution_id = execution_id
        self.status = status
        self.error = error


class ExecutionFailed(ExecutionError):
    """The execution ended `failed` (the agent raised, refused the input, or was unreachable)."""


class ExecutionCancelled(ExecutionError):
    """The execution ended `cancelled`."""


class ExecutionTimedOut(ExecutionError):
    """The execution ended `timeout`: its deadline passed before the agent reported."""


class QueueFull(ApiError):
    """The queue holds `max_queued` executions: the workers are behind or down."""

    code = "queue_full"


class NodeUnavailable(ApiError):
    """The target's node has sent no heartbeat for longer than its lease; the caller may retry
    after `Retry-After`, or submit with `queue_if_unavailable` to have the execution wait."""

    code = "node_unavailable"


class SyncTimeout(ApiError):
    """A sync execute reached its limit; the execution carries on, and the answer names its
    `execution_id` (and `run_id`) to poll."""

    code = "sync_timeout"


# The one place where errors meet HTTP statuses: the API answers with them, agents (the SDK's
# endpoint) too, and the OpenAPI document lists them. The most specific class listed wins.
HTTP_STATUS: dict[type[ApiError], int] = {
    InvalidRequest: 400,
    InvalidInput: 422,
    IdempotencyKeyReused: 422,
    MalformedInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    InvalidTransition: 409,
    MemoryScopeFull: 409,
    RequestTimeout: 408,
    ExecutionExpired: 410,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    HostNotAllowed: 421,
    RateLimited: 429,
    HeadersTooLarge: 431,
    TargetFailed: 500,
    NotSupported: 501,
    Unavailable: 503,
    QueueFull: 503,
    NodeUnavailable: 503,
    SyncTimeout: 504,
}
INTERNAL_STATUS = 500


def http_status(error: ApiError | type[ApiError]) -> int:
    """The HTTP status of an error (or error class): its nearest listed class's, else 500."""
    kind = error if isinstance(error, type) else type(error)
    return next((HTTP_STATUS[c] for c in kind.__mro__ if c in HTTP_STATUS), INTERNAL_STATUS)
