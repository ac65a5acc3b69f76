"""The Lua scripts of the core, registered with Redis behind the shared prelude.

Each transition is one script in `lua/`; every script is sent with `lua/common.lua` in front
of it, so that the helpers there (the status document, job enqueueing, lifecycle entries,
webhook views) are written once and every script uses the same ones.
"""

from __future__ import annotations

from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

PRELUDE = "common"


def source(name: str) -> str:
    """The full text Redis runs for `lua/{name}.lua`: the prelude, then the script."""
    lua = resources.files("agentfield_arq.core") / "lua"
    return (lua / f"{PRELUDE}.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def load_script(redis: Redis, name: str) -> AsyncScript:
    """Register `lua/{name}.lua` (with the prelude) on `redis`; calling it runs it by SHA."""
    return redis.register_script(source(name))
