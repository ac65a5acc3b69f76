"""The app factory: the route table, error handlers, and a lifespan that owns the Redis clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from agentfield_arq.api import routes
from agentfield_arq.api.deps import Deps, Shard, Shards
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
from agentfield_arq.core.routing import HOME
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
        routes_table = settings.routes
        # Requests' scripts pipelined on one connection per Redis (core/channel.py).
        home_redis = connect(settings.redis_url, settings, channel=True)
        clients: list[Redis] = [home_redis]
        shards: dict[str, Shard] = {}
        for code, url in routes_table.urls.items():
            redis = home_redis if code == HOME else connect(url, settings, channel=True)
            # XREAD BLOCK holds its connection, so each stream reader gets a client of its
            # own, whose command timeout allows for the block.
            reader = connect(url, settings, block_s=BLOCK_MS / 1000)
            clients += [reader] if redis is home_redis else [redis, reader]
            named = code if routes_table.routed else ""  # what new ids carry
            shards[code] = _shard(settings, named, redis, reader, home_redis)
        home = shards[HOME]
        keys = Keys(settings.key_prefix)
        tasks = [
            asyncio.create_task(work, name=f"{name}-{shard.code}")
            for shard in shards.values()
            for name, work in (
                ("completions", shard.completions.run()),
                ("completions-recheck", shard.completions.recheck()),
            )
        ]
        # The memory change follower blocks too: a connection of its own, to home.
        changes = Changes(connect(settings.redis_url, settings, block_s=BLOCK_MS / 1000), keys)
        clients.append(changes.redis)
        tasks.append(asyncio.create_task(changes.run(), name="memory-changes"))
        try:
            yield {
                "deps": Deps(
                    settings=settings,
                    redis=home_redis,
                    store=home.store,
                    nodes=home.nodes,
                    completions=home.completions,
                    broadcast=home.broadcast,
                    changes=changes,
                    outbox=home.outbox,
                    credentials=KeyStore(home_redis, settings),
                    proof=home.proof,
                    memory=MemoryStore(home_redis, settings),
                    vectors=VectorStore(home_redis, settings),
                    approvals=home.approvals,
                    tracing=tracing or Tracing(),
                    shards=Shards(routes=routes_table, by_code=shards),
                )
            }
        finally:
            for running in tasks:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            for client in reversed(clients):
                await client.aclose()

    return Starlette(
        routes=[*routes.table(), *routes.SOCKETS, *static_routes()],
        middleware=[
            Middleware(Edge, settings=settings, express=routes.Express(routes.OPERATIONS, HANDLERS))
        ],
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


def _shard(settings: Settings, code: str, redis: Redis, reader: Redis, home: Redis) -> Shard:
    """The clients of one Redis: `code` names it in new ids ('' when not routed); node owners
    are read and claimed on `home`, beside the API keys."""
    store = ExecutionStore(redis, settings, code)
    nodes = NodeRegistry(redis, settings, owners=home)
    completions = Completions(reader, Keys(settings.key_prefix))
    return Shard(
        code=code or HOME,
        redis=redis,
        store=store,
        nodes=nodes,
        completions=completions,
        broadcast=Broadcast(completions),
        outbox=Outbox(redis, settings),
        proof=CallbackProof(redis, settings, owners=home),
        approvals=Approvals(store, nodes),
    )


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
