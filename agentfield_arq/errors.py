"""One exception tree for the whole control plane.

AgentFieldArqError
├── ConfigurationError          a setting is unknown or malformed (start-up only)
├── DestinationRefused          a webhook receiver's address is not allowed (SSRF guard)
├── ApiError                    carries a snake_case `code`; api/ maps it to an HTTP status,
│   │                           and the client raises the class of the `code` it was answered
│   ├── InvalidRequest          400: a body, field or header is wrong
│   │   ├── InvalidTarget       400: not `node_id.name`
│   │   └── TooManyIds          400: batch-status asked for more ids than allowed
│   ├── NotFound                404
│   │   ├── ExecutionNotFound   404: no such execution id
│   │   ├── TargetNotFound      404: unknown node or reasoner/skill
│   │   ├── NodeNotFound        404: unknown node id
│   │   └── WebhookNotFound     404: the execution has no webhook
│   ├── InvalidTransition       409: a terminal execution cannot change again
│   │   ├── ExecutionNotTerminal 409: a webhook is only sent once its execution is terminal
│   │   └── WebhookBusy         409: the last delivery attempt is still being closed
│   ├── PayloadTooLarge         413: the body is over the configured cap
│   ├── NotSupported            501: an AgentField route that agentfield-arq does not implement
│   ├── Unavailable             503: Redis does not answer
│   ├── QueueFull               503: too many executions wait for a worker; retry later
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
    """A webhook destination resolves to an address the SSRF guard does not allow."""


class ApiError(AgentFieldArqError):
    """An error with a machine-readable code, shown to callers as `{"error", "code"}`."""

    code = "internal_error"
    # The HTTP status a client was answered with; None when raised inside the control plane.
    status_code: int | None = None

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.message = message
        # Extra fields of the error body (e.g. the `execution_id` of a sync timeout).
        self.details = details


class InvalidRequest(ApiError):
    """The request body, a field or a header is invalid."""

    code = "invalid_request"


class InvalidTarget(InvalidRequest):
    """The target is not of the form `node_id.name`."""

    code = "invalid_target"


class TooManyIds(InvalidRequest):
    """A batch asked for more ids than the configured limit."""

    code = "too_many_ids"


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


class WebhookNotFound(NotFound):
    """The execution was submitted without a (valid) webhook."""

    code = "webhook_not_found"


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


class NotSupported(ApiError):
    """An AgentField route (DID, verifiable credentials...) that this control plane lacks."""

    code = "not_supported"


class Unavailable(ApiError):
    """A dependency (Redis) does not answer."""

    code = "unavailable"


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


class SyncTimeout(ApiError):
    """A sync execute reached its limit; `details` carry the ids to poll."""

    code = "sync_timeout"
