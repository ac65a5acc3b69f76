"""Health, SDK telemetry and execution logs, and the AgentField routes we do not offer."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.codec import encode, now_ms
from agentfield_arq.errors import NotSupported
from agentfield_arq.keys import TELEMETRY_MAXLEN
from agentfield_arq.models import ExecutionLogs, TelemetryEvent
from api.body import decode, read_body
from api.deps import deps

logger = logging.getLogger(__name__)
JSON = "application/json"


async def health(request: Request) -> Response:
    """200 when Redis answers a PING, 503 otherwise."""
    try:
        await deps(request).redis.ping()
    except RedisError as exc:
        return Response(
            encode({"status": "unhealthy", "redis": "down", "error": str(exc)}),
            status_code=503,
            media_type=JSON,
        )
    return Response(encode({"status": "ok", "redis": "up"}), media_type=JSON)


async def telemetry(request: Request) -> Response:
    """Record an SDK event in a capped stream; never changes an execution."""
    d = deps(request)
    body = await read_body(request, d.settings.max_body_bytes)
    event = decode(body, TelemetryEvent)
    await d.redis.xadd(
        d.store.keys.telemetry,
        {
            "execution_id": event.execution_id or "",
            "status": event.status or "",
            "at_ms": now_ms(),
            "body": body,
        },
        maxlen=TELEMETRY_MAXLEN,
        approximate=True,
    )
    logger.debug("telemetry execution_id=%s status=%s", event.execution_id, event.status)
    return Response(encode({"success": True}), media_type=JSON)


async def execution_logs(request: Request) -> Response:
    """Record an agent's execution log records in a capped stream; never changes an execution."""
    d = deps(request)
    body = await read_body(request, d.settings.max_body_bytes)
    logs = decode(body, ExecutionLogs)
    execution_id = request.path_params["execution_id"][:100]
    await d.redis.xadd(
        d.store.keys.execution_logs,
        {
            "execution_id": execution_id,
            "entries": len(logs.entries),
            "at_ms": now_ms(),
            "body": body,
        },
        maxlen=TELEMETRY_MAXLEN,
        approximate=True,
    )
    logger.debug("execution logs execution_id=%s entries=%d", execution_id, len(logs.entries))
    return Response(encode({"success": True}), media_type=JSON)


async def did_register(request: Request) -> Response:
    """AgentField's DID registration: answered 501 with a hint, so SDK agents carry on."""
    raise NotSupported(
        "agentfield-arq has no DID or verifiable-credential service; "
        "create AgentField agents with enable_did=False to skip this call"
    )
