"""Webhook routes: the dead-letter list, and sending an execution's webhook again."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.deps import deps
from agentfield_arq.api.params import int_param, text_param
from agentfield_arq.core.routing import merged_page
from agentfield_arq.kernel.codec import encode, now_ms
from agentfield_arq.kernel.models import DeadPage

JSON = "application/json"
DEFAULT_PAGE = 50
MAX_PAGE = 500


MAX_CURSOR = 200


async def dead(request: Request) -> Response:
    """Deliveries that ran out of attempts (or were refused or gone), newest first; page on with
    `?cursor=<next_cursor>`."""
    limit = int_param(request, "limit", default=DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    cursor = text_param(request, "cursor", max_length=MAX_CURSOR)
    shards = deps(request).shards
    if shards.routes.routed:
        parts = await asyncio.gather(*(s.outbox.dead_entries(limit, cursor) for s in shards))
        deliveries, next_cursor = merged_page(parts, limit)
        page = DeadPage(deliveries=deliveries, next_cursor=next_cursor)
    else:
        page = await shards.home.outbox.dead(limit, cursor)
    return Response(encode(page), media_type=JSON)


async def retry(request: Request) -> Response:
    """Send the execution's webhook again with the same webhook-id, delivered or dead; the
    agent is not run again. Answers 202: the delivery happens in a worker."""
    execution_id = request.path_params["execution_id"]
    outbox = (await deps(request).shards.holding(execution_id)).outbox
    redriven = await outbox.redrive(execution_id, now_ms())
    return Response(encode(redriven), status_code=202, media_type=JSON)
