"""The worker process's Worker: arq's, woken by new work (see `agentfield_arq.core.arq_bridge`)."""

from __future__ import annotations

from agentfield_arq.core.arq_bridge import WakingWorker
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.workers.settings import worker_settings


def create_worker(settings: Settings) -> WakingWorker:
    """The worker process's Worker, configured by `workers.settings.worker_settings`."""
    return WakingWorker(
        wake_url=settings.redis_url,
        wake_stream=Keys(settings.key_prefix).events,
        **worker_settings(settings),
    )
