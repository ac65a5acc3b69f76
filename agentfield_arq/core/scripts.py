"""The Lua scripts of the core, registered with Redis behind the shared prelude.

Each transition is one script in `lua/`; every script is sent with `lua/common.lua` in front
of it, so that the helpers there (the status document, job enqueueing, lifecycle entries,
webhook views) are written once and every script uses the same ones.

A script runs by its SHA. When Redis does not hold it (a fresh server, or one restarted or
failed over), the first caller to learn so loads it, and callers that learn so meanwhile wait
for that load and run it again: redis-py's own script objects load it once per caller. Under a
burst of 5,000 sync requests on a fresh Redis (bench/waiters.py), that was 5,000 loads of the
creation script's whole text, each request holding its failed call's traceback until its load
came back.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

from agentfield_arq.core.channel import Channel

PRELUDE = "common"


def source(name: str) -> str:
    """The full text Redis runs for `lua/{name}.lua`: the prelude, then the script."""
    lua = resources.files("agentfield_arq.core") / "lua"
    return (lua / f"{PRELUDE}.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Script(AsyncScript):
    """A script run by SHA, loaded once however many callers find Redis without it."""

    def __init__(self, redis: Redis, text: str) -> None:
        super().__init__(redis, text)
        self._loads = 0
        self._loading = asyncio.Lock()

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | None = None,
    ) -> Any:
        """Run the script (in a pipeline: as redis-py does, the pipeline loads what it lacks)."""
        client = client or self.registered_client
        # An attribute, not isinstance: redis-py's clients derive from typing Protocols, whose
        # isinstance check cost ~6% of an enqueue's CPU (bench/).
        channel: Channel | None = getattr(client, "channel", None)
        if channel is None and isinstance(client, Pipeline):
            return await super().__call__(keys, args, client)
        count = len(keys or ())
        words: list[Any] = [*(keys or ()), *(args or ())]
        loads = self._loads
        run = client.evalsha if channel is None else functools.partial(channel.call, "EVALSHA")
        try:
            return await run(self.sha, count, *words)  # type: ignore[misc]  # redis-py's async stubs
        except NoScriptError:
            await self._load(client, loads)
            return await run(self.sha, count, *words)  # type: ignore[misc]  # redis-py's async stubs

    async def _load(self, client: Redis, seen: int) -> None:
        """Load the script, unless another caller did since this one's call went out."""
        async with self._loading:
            if self._loads == seen:
                await client.script_load(self.script)
                self._loads += 1


def load_script(redis: Redis, name: str) -> Script:
    """Register `lua/{name}.lua` (with the prelude) on `redis`; calling it runs it by SHA."""
    return Script(redis, source(name))
