"""The Starlette API: a thin HTTP adapter over `agentfield_arq`."""

from agentfield_arq.api.app import create_app

__all__ = ["create_app"]
