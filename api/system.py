"""Health and SDK telemetry."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.codec import encode, now_ms
from agentfield_arq.keys import TELEMETRY_MAXLEN
from agentfield_arq.models import TelemetryEvent
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
