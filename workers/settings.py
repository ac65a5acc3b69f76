"""arq WorkerSettings built from our Settings (read by the entry point, never at import)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from arq import cron, func

from agentfield_arq.core.arq_bridge import (
    DELIVER_WEBHOOK,
    NOTIFY_WEBHOOK,
    RUN_EXECUTION,
    SETTLED_JOBS,
    TELL_AGENT,
    arq_deserialize,
    arq_serialize,
    redis_settings,
    sweep_cron_name,
)
from agentfield_arq.core.cancellation import Cancellation
from agentfield_arq.core.connection import connect, connect_sync
from agentfield_arq.core.delivery import Deliverer, job_max_tries, webhook_client
from agentfield_arq.core.guard import agent_client
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.lease import WorkerLease
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Outbox
from agentfield_arq.core.runner import Runner
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.core.tracing import Tracing
from agentfield_arq.workers.jobs import (
    deliver_webhook,
    notify_webhook,
    run_execution,
    sweep_deadlines,
    tell_agent,
)

Hook = Callable[[dict[str, Any]], Awaitable[None]]


def worker_settings(
    settings: Settings,
    *,
    agent_transport: httpx.AsyncBaseTransport | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    tracing: Tracing | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (or `run_worker`) serving our queue.

    The transports replace the network under the agent client and the webhook client (tests
    pass `httpx.MockTransport` or `httpx.ASGITransport`); each replaces the guarded transport,
    and so the connect policy or the SSRF guard with it. With `tracing` (core/tracing.py
    `from_env`, at the entry point), each run, agent call and webhook attempt is a span.
    The worker serves the Redis of its shard (`Settings.served`); it reaches the other Redis
    of the routes only to cancel the descendants of an execution it cancelled.
    """
    urls = settings.routes.urls
    elsewhere = [url for code, url in urls.items() if code != settings.worker_shard]
    settings = settings.served()
    on_startup, on_shutdown = _lifecycle(
        settings, agent_transport, webhook_transport, tracing or Tracing(), elsewhere
    )
    return {
        "functions": _functions(settings),
        "cron_jobs": _cron_jobs(settings),
        "redis_settings": redis_settings(settings.redis_url),
        "queue_name": Keys(settings.key_prefix).queue,
        "job_serializer": arq_serialize,
        "job_deserializer": arq_deserialize,
        "max_jobs": settings.worker_concurrency,
        "poll_delay": settings.worker_poll_delay_s,
        "keep_result": 0,
        "handle_signals": True,
        # SIGTERM: take no new job, let running ones finish this long, then cancel them (a
        # cancelled run hands its execution back, see Runner.run).
        "job_completion_wait": settings.worker_drain_s,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "health_check_interval": 30,
    }


def _lifecycle(
    settings: Settings,
    agent_transport: httpx.AsyncBaseTransport | None,
    webhook_transport: httpx.AsyncBaseTransport | None,
    tracing: Tracing,
    elsewhere: list[str],
) -> tuple[Hook, Hook]:
    """Build the process's clients on start (a Runner and a Deliverer, and clients of the
    Redis `elsewhere`) and start its lease; close them on stop."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        running: set[str] = set()  # the run jobs in progress, whose arq locks the lease renews
        lease = WorkerLease(redis, settings, running=running)
        await lease.beat()  # live before it claims anything
        # The beats, from a thread of their own, do not wait behind the event loop (lease.py).
        ctx["beat_redis"] = connect_sync(settings.redis_url, settings)
        lease.start_heartbeat(ctx["beat_redis"])
        ctx["lease"] = lease
        ctx["lease_task"] = asyncio.create_task(lease.run())
        ctx["http"] = agent_client(settings, agent_transport)
        store, nodes = ExecutionStore(redis, settings), NodeRegistry(redis, settings)
        ctx["runner"] = Runner(
            store,
            nodes,
            ctx["http"],
            settings,
            lease.worker_id,
            running,
            tracing,
            # Under WakingWorker, whose finish_job skips the run jobs their settle ended.
            settled=ctx.get(SETTLED_JOBS),
        )
        ctx["elsewhere"] = [connect(url, settings) for url in elsewhere]
        ctx["cancellation"] = Cancellation(
            store,
            nodes,
            ctx["http"],
            settings,
            [ExecutionStore(other, settings) for other in ctx["elsewhere"]],
        )
        ctx["webhook_http"] = webhook_client(settings, webhook_transport)
        ctx["deliverer"] = Deliverer(
            Outbox(redis, settings), ctx["webhook_http"], settings, tracing=tracing
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "lease_task" in ctx:
            ctx["lease_task"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx["lease_task"]
            await ctx["lease"].release()
        if "beat_redis" in ctx:
            ctx["beat_redis"].close()
        for client in ("http", "webhook_http"):
            if client in ctx:
                await ctx[client].aclose()
        for other in ctx.get("elsewhere", ()):
            await other.aclose()

    return on_startup, on_shutdown


def _functions(settings: Settings) -> list[Any]:
    return [
        func(
            run_execution,
            name=RUN_EXECUTION,
            timeout=settings.job_timeout_s,
            keep_result=0,
            max_tries=settings.max_job_tries,
        ),
        func(
            deliver_webhook,
            name=DELIVER_WEBHOOK,
            timeout=settings.webhook_job_timeout_s,
            keep_result=0,
            max_tries=job_max_tries(settings),
        ),
        func(
            tell_agent,
            name=TELL_AGENT,
            # Within run_execution's: arq sizes every job's in-progress lock on the longest.
            timeout=settings.job_timeout_s,
            keep_result=0,
            max_tries=settings.max_job_tries,
        ),
        func(
            notify_webhook,
            name=NOTIFY_WEBHOOK,
            timeout=settings.webhook_job_timeout_s,
            keep_result=0,
            max_tries=1,
        ),
    ]


def _cron_jobs(settings: Settings) -> list[Any]:
    return [
        cron(
            sweep_deadlines,
            name=sweep_cron_name(settings.key_prefix),
            second=set(range(0, 60, settings.sweep_interval_s)),
            microsecond=0,
            timeout=settings.webhook_job_timeout_s,
            keep_result=0,
            run_at_startup=False,
        )
    ]
