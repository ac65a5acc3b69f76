"""Health and readiness, SDK telemetry and execution logs, and the AgentField routes we do not
offer."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.body import decode, read_body
from agentfield_arq.api.deps import Shard, deps
from agentfield_arq.api.params import text_param
from agentfield_arq.core.keys import safe_id
from agentfield_arq.core.metrics import Gauges
from agentfield_arq.core.roster import Roster
from agentfield_arq.core.telemetry import Telemetry
from agentfield_arq.kernel.codec import encode, now_ms
from agentfield_arq.kernel.errors import InvalidRequest, NotReady, NotSupported, Unavailable
from agentfield_arq.kernel.models import (
    Acknowledged,
    ExecutionLogs,
    Health,
    QueueDepth,
    TelemetryEvent,
)

logger = logging.getLogger(__name__)
JSON = "application/json"
ACKNOWLEDGED = Acknowledged(success=True)


async def health(request: Request) -> Response:
    """200 when Redis answers a PING, 503 with the reason otherwise: within the Redis command
    timeout, since a stalled Redis is the case this must show. With `?detail=1`, the queue,
    the workers alive and the active nodes too."""
    detail = text_param(request, "detail", max_length=5)
    if detail not in (None, "0", "1", "false", "true"):
        raise InvalidRequest(
            "query parameter detail: 1 (or true) for the counts, 0 (or false) without"
        )
    d = deps(request)
    try:
        # Every Redis of the routes (core/routing.py) at once: an API that cannot reach one
        # of them cannot serve that one's nodes.
        await asyncio.gather(*(shard.redis.ping() for shard in d.shards))
    except RedisTimeoutError as exc:
        reason = f"Redis did not answer within {d.settings.redis_command_timeout_s:g}s"
        raise _unhealthy(reason, exc) from exc
    except RedisError as exc:
        raise _unhealthy(f"Redis is unreachable ({exc})", exc) from exc
    if detail in ("1", "true"):
        return Response(encode(await _detailed(request, "ok")), media_type=JSON)
    return Response(encode(Health(status="ok", redis="up")), media_type=JSON)


def _unhealthy(reason: str, exc: Exception) -> Unavailable:
    logger.warning("health: %s: %s", reason, exc)
    return Unavailable("Redis does not answer", status="unhealthy", redis="down", reason=reason)


async def ready(request: Request) -> Response:
    """200 when Redis answers and at least one worker is alive to take the work, with the
    counts; 503 otherwise (`unavailable`, or `not_ready` naming what is missing)."""
    answer = await _detailed(request, "ready")
    if not answer.workers_alive:
        raise NotReady("no worker has been heard from lately: queued work would wait")
    return Response(encode(answer), media_type=JSON)


async def _detailed(request: Request, status: str) -> Health:
    # With several Redis (core/routing.py), every one's at once, added up; a Redis without a
    # live worker is not ready, whatever the others have.
    shards = list(deps(request).shards)
    counts = await asyncio.gather(*(_counts(shard) for shard in shards))
    idle = [
        shard.code for shard, (_, _, workers, _) in zip(shards, counts, strict=True) if not workers
    ]
    if status == "ready" and idle and len(shards) > 1:
        raise NotReady(f"no worker has been heard from lately on Redis {', '.join(idle)}")
    return Health(
        status=status,
        redis="up",
        queue=QueueDepth(
            executions=sum(c[0]["execution"] for c in counts),
            webhook_deliveries=sum(c[0]["webhook_delivery"] for c in counts),
            webhook_notices=sum(c[0]["webhook_notice"] for c in counts),
            oldest_queued_s=max(c[1] for c in counts),
        ),
        workers_alive=sum(c[2] for c in counts),
        nodes_active=sum(c[3] for c in counts),
    )


async def _counts(shard: Shard) -> tuple[dict[str, int], float, int, int]:
    """One Redis's queue by kind, oldest queued job (s), live workers and active nodes."""
    gauges = Gauges(shard.redis, shard.store.keys, shard.nodes)
    _, by_kind, oldest = await gauges.queue(now_ms())
    workers = await Roster(shard.redis, shard.store.keys).alive(now_ms())
    return by_kind, oldest, workers, (await gauges.node_counts())["active"]


async def telemetry(request: Request) -> Response:
    """Record an SDK event; never changes an execution."""
    d = deps(request)
    body = await read_body(request, d.settings.max_body_bytes)
    await Telemetry(d.redis, d.store.keys).event(
        body, decode(body, TelemetryEvent, d.settings.max_json_depth)
    )
    return Response(encode(ACKNOWLEDGED), media_type=JSON)


async def execution_logs(request: Request) -> Response:
    """Record an agent's execution log records; never changes an execution."""
    d = deps(request)
    execution_id = request.path_params["execution_id"]
    if not safe_id(execution_id):
        raise InvalidRequest(f"execution_id: '{execution_id[:128]}' is not an execution id")
    body = await read_body(request, d.settings.max_body_bytes)
    logs = decode(body, ExecutionLogs, d.settings.max_json_depth)
    await Telemetry(d.redis, d.store.keys).logs(execution_id, body, logs)
    return Response(encode(ACKNOWLEDGED), media_type=JSON)


async def did_register(request: Request) -> Response:
    """AgentField's DID registration: answered 501 with a hint, so SDK agents carry on."""
    raise NotSupported(
        "agentfield-arq has no DID or verifiable-credential service; "
        "create AgentField agents with enable_did=False to skip this call"
    )
