"""The app factory: the route table, error handlers, and a lifespan that owns the Redis clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from agentfield_arq.api import routes
from agentfield_arq.api.deps import Deps
from agentfield_arq.api.edge import Edge
from agentfield_arq.api.errors import HANDLERS
from agentfield_arq.core.approvals import Approvals
from agentfield_arq.core.broadcast import Broadcast
from agentfield_arq.core.changes import Changes
from agentfield_arq.core.completions import Completions
from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import KeyStore, well_formed
from agentfield_arq.core.dispatch import CallbackProof
from agentfield_arq.core.follower import BLOCK_MS
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.memory import MemoryStore
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Outbox
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.core.tracing import Tracing
from agentfield_arq.core.vectors import VectorStore
from agentfield_arq.kernel.errors import ConfigurationError


def create_app(settings: Settings, tracing: Tracing | None = None) -> Starlette:
    """Build the API for `settings`; Redis clients live as long as the app's lifespan. With
    `tracing` (core/tracing.py `from_env`, at the entry point), each request is a span."""
    if not settings.redis_url:
        raise ValueError("create_app needs settings.redis_url")
    check_auth(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = connect(settings.redis_url, settings)
        # XREAD BLOCK holds its connection, so the stream reader gets a client of its own,
        # whose command timeout allows for the block.
        reader = connect(settings.redis_url, settings, block_s=BLOCK_MS / 1000)
        keys = Keys(settings.key_prefix)
        completions = Completions(reader, keys)
        credentials = KeyStore(redis, settings)
        task = asyncio.create_task(completions.run(), name="completions")
        # The memory change follower blocks too: a third connection.
        changes = Changes(connect(settings.redis_url, settings, block_s=BLOCK_MS / 1000), keys)
        follower = asyncio.create_task(changes.run(), name="memory-changes")
        store = ExecutionStore(redis, settings)
        nodes = NodeRegistry(redis, settings)
        try:
            yield {
                "deps": Deps(
                    settings=settings,
                    redis=redis,
                    store=store,
                    nodes=nodes,
                    completions=completions,
                    broadcast=Broadcast(completions),
                    changes=changes,
                    outbox=Outbox(redis, settings),
                    credentials=credentials,
                    proof=CallbackProof(redis, settings),
                    memory=MemoryStore(redis, settings),
                    vectors=VectorStore(redis, settings),
                    approvals=Approvals(store, nodes),
                    tracing=tracing or Tracing(),
                )
            }
        finally:
            for running in (task, follower):
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            await changes.redis.aclose()
            await reader.aclose()
            await redis.aclose()

    return Starlette(
        routes=[*routes.table(), *routes.SOCKETS, *static_routes()],
        middleware=[Middleware(Edge, settings=settings)],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )


# The dashboard and the API reference: files shipped in the package, public (they hold no
# data: every call they make to the API carries the operator's key).
STATIC = Path(__file__).parent


def static_routes() -> list[BaseRoute]:
    """/ui (the dashboard) and /docs (Swagger UI over /openapi.json)."""
    return [
        Mount(f"/{name}", StaticFiles(directory=STATIC / name, html=True), name=name)
        for name in ("ui", "docs")
    ]


def check_auth(settings: Settings) -> None:
    """Refuse to serve without auth beyond loopback, or with a bootstrap key of the wrong shape."""
    if not settings.auth and not settings.loopback_only:
        raise ConfigurationError(
            f"AGENTFIELD_ARQ_AUTH=false is only allowed on a loopback AGENTFIELD_ARQ_API_HOST, "
            f"not {settings.api_host!r}"
        )
    if settings.admin_key and not well_formed(settings.admin_key):
        raise ConfigurationError(
            "invalid setting: AGENTFIELD_ARQ_ADMIN_KEY must look like a key of "
            "`agentfield-arq keys create` (afk_ and 20-200 URL-safe characters)"
        )
