"""One exception tree for the whole control plane.

AgentFieldArqError
├── ConfigurationError          a setting is unknown or malformed (start-up only)
└── ApiError                    carries a snake_case `code`; api/ maps it to an HTTP status
    ├── InvalidRequest          400: a body, field or header is wrong
    │   ├── InvalidTarget       400: not `node_id.name`
    │   └── TooManyIds          400: batch-status asked for more ids than allowed
    ├── NotFound                404
    │   ├── ExecutionNotFound   404: no such execution id
    │   ├── TargetNotFound      404: unknown node or reasoner/skill
    │   └── NodeNotFound        404: unknown node id
    ├── InvalidTransition       409: a terminal execution cannot change again
    ├── PayloadTooLarge         413: the body is over the configured cap
    └── Unavailable             503: Redis does not answer
"""

from __future__ import annotations


class AgentFieldArqError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigurationError(AgentFieldArqError):
    """A setting is unknown or malformed; raised at start-up with the variable's name."""


class ApiError(AgentFieldArqError):
    """An error with a machine-readable code, shown to callers as `{"error", "code"}`."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class InvalidTransition(ApiError):
    """The execution is terminal and the update would change it."""

    code = "invalid_transition"


class PayloadTooLarge(ApiError):
    """The request body is larger than the configured cap."""

    code = "payload_too_large"


class Unavailable(ApiError):
    """A dependency (Redis) does not answer."""

    code = "unavailable"
