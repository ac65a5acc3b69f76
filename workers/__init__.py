"""The arq worker: a thin adapter that runs `agentfield_arq.runner` jobs."""

from workers.settings import worker_settings

__all__ = ["worker_settings"]
