"""The arq worker: a thin adapter that runs `agentfield_arq.core.runner` jobs."""

from agentfield_arq.workers.settings import worker_settings

__all__ = ["worker_settings"]
