"""agentfield-arq: a Redis-backed deferred-execution control plane for AgentField-style agents."""

__version__ = "0.1.0"

__all__ = ["__version__"]
