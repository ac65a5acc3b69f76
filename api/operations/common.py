"""What the operation tables share: the path prefix, the errors common to many endpoints."""

from __future__ import annotations

from agentfield_arq.kernel.errors import (
    InvalidRequest,
    JsonTooDeep,
    NotReplicated,
    PayloadTooLarge,
    RequestTimeout,
    Unavailable,
)
from agentfield_arq.kernel.models import Acknowledged, Execution

PREFIX = "/api/v1"
# What every endpoint that reads a body can answer, and every one that touches Redis
# (api/errors.py answers any Redis connection error as Unavailable).
BODY = (InvalidRequest, JsonTooDeep, PayloadTooLarge, RequestTimeout)
REDIS = (Unavailable,)
# What every endpoint that acknowledges a state change can answer besides (REDIS_WAIT_REPLICAS).
DURABLE = (*REDIS, NotReplicated)

# Generic answers are documented bare: msgspec names the component of `Execution` "Execution",
# that of `Execution[Any]` "Execution_Any_".
EXECUTIONS_BY_ID = dict[str, Execution]  # type: ignore[type-arg]
ACK = {200: ("recorded", Acknowledged)}
