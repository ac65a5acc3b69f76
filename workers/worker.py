"""The worker process's Worker: arq's, woken by new work (see `agentfield_arq.core.arq_bridge`)."""

from __future__ import annotations

import resource

import httpx

from agentfield_arq.core.arq_bridge import WakingWorker, arq_pool
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.tracing import Tracing
from agentfield_arq.workers.settings import worker_settings


def create_worker(
    settings: Settings,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    agent_transport: httpx.AsyncBaseTransport | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    tracing: Tracing | None = None,
) -> WakingWorker:
    """A Worker configured by `worker_settings`. In `burst` mode it returns once the queue is
    empty (deferred retries included); tests run it so, without signal handlers, with their
    agent and webhook receiver behind the transports (see `worker_settings`). It serves the
    Redis of its shard (`AGENTFIELD_ARQ_WORKER_SHARD`, home by default)."""
    kwargs = worker_settings(
        settings,
        agent_transport=agent_transport,
        webhook_transport=webhook_transport,
        tracing=tracing,
    )
    settings = settings.served()
    keys = Keys(settings.key_prefix)
    kwargs.update(
        burst=burst, handle_signals=handle_signals, redis_pool=arq_pool(settings, keys.queue)
    )
    return WakingWorker(settings=settings, wake_stream=keys.events, **kwargs)


# Descriptors a worker needs beyond two per slot (an agent connection and, at worst, a Redis
# connection of its own): the webhook client, the wake-up stream, logs.
SPARE_FILES = 256


def raise_open_files_limit(settings: Settings) -> int:
    """Raise this process's soft limit of open files towards what `worker_concurrency` slots
    need (two descriptors each), within the hard limit; returns the soft limit now in force.
    Many systems start processes at a soft limit of 1,024, which a worker with thousands of
    slots in flight would hit (EMFILE) long before the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * settings.worker_concurrency + SPARE_FILES
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted
