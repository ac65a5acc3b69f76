"""The app factory: routes, error handlers, and a lifespan that owns the Redis clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from agentfield_arq.api import executions, nodes, openapi, system, webhooks
from agentfield_arq.api.deps import Deps
from agentfield_arq.api.errors import HANDLERS
from agentfield_arq.core.completions import Completions
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Outbox
from agentfield_arq.core.queue import connect
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore

PREFIX = "/api/v1"


def routes() -> list[Route]:
    """Every route of the contract, plus the OpenAPI document."""
    return [
        Route(f"{PREFIX}/execute/async/{{target}}", executions.execute_async, methods=["POST"]),
        Route(f"{PREFIX}/execute/{{target}}", executions.execute_sync, methods=["POST"]),
        Route(f"{PREFIX}/executions/batch-status", executions.batch_status, methods=["POST"]),
        Route(f"{PREFIX}/executions/{{execution_id}}", executions.get_one, methods=["GET"]),
        Route(
            f"{PREFIX}/executions/{{execution_id}}/status", executions.callback, methods=["POST"]
        ),
        Route(
            f"{PREFIX}/executions/{{execution_id}}/cancel", executions.cancel_one, methods=["POST"]
        ),
        Route(
            f"{PREFIX}/executions/{{execution_id}}/webhook/retry", webhooks.retry, methods=["POST"]
        ),
        Route(f"{PREFIX}/webhooks/dead", webhooks.dead, methods=["GET"]),
        Route(f"{PREFIX}/nodes/register", nodes.register, methods=["POST"]),
        Route(f"{PREFIX}/nodes", nodes.register, methods=["POST"]),
        Route(f"{PREFIX}/nodes", nodes.list_nodes, methods=["GET"]),
        Route(f"{PREFIX}/nodes/{{node_id}}", nodes.get_node, methods=["GET"]),
        Route(f"{PREFIX}/nodes/{{node_id}}/heartbeat", nodes.heartbeat, methods=["POST"]),
        Route(f"{PREFIX}/nodes/{{node_id}}/shutdown", nodes.shutdown, methods=["POST"]),
        Route(f"{PREFIX}/nodes/{{node_id}}/status", nodes.lifecycle, methods=["PATCH", "PUT"]),
        Route(f"{PREFIX}/workflow/executions/events", system.telemetry, methods=["POST"]),
        Route(
            f"{PREFIX}/executions/{{execution_id}}/logs", system.execution_logs, methods=["POST"]
        ),
        Route(f"{PREFIX}/did/register", system.did_register, methods=["POST"]),
        Route(f"{PREFIX}/health", system.health, methods=["GET"]),
        Route("/health", system.health, methods=["GET"]),
        Route("/openapi.json", openapi.document, methods=["GET"]),
    ]


def create_app(settings: Settings) -> Starlette:
    """Build the API for `settings`; Redis clients live as long as the app's lifespan."""
    if not settings.redis_url:
        raise ValueError("create_app needs settings.redis_url")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = connect(settings.redis_url)
        # XREAD BLOCK holds its connection, so the stream reader gets a client of its own.
        reader = connect(settings.redis_url)
        keys = Keys(settings.key_prefix)
        completions = Completions(reader, keys)
        task = asyncio.create_task(completions.run(), name="completions")
        try:
            yield {
                "deps": Deps(
                    settings=settings,
                    redis=redis,
                    store=ExecutionStore(redis, settings),
                    nodes=NodeRegistry(redis, settings),
                    completions=completions,
                    outbox=Outbox(redis, settings),
                )
            }
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await reader.aclose()
            await redis.aclose()

    return Starlette(routes=routes(), exception_handlers=HANDLERS, lifespan=lifespan)
