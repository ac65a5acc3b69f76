"""Scripts run by SHA, and loaded once when Redis does not hold them."""

from __future__ import annotations

import asyncio
from importlib import resources

import pytest
from redis.asyncio import Redis

from agentfield_arq.core.scripts import Script
from agentfield_arq.kernel.codec import rfc3339

pytestmark = pytest.mark.integration


async def _loads(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_script|load", {}).get("calls", 0))


async def test_callers_finding_redis_without_a_script_load_it_once_between_them(
    redis_client: Redis,
) -> None:
    script = Script(redis_client, "return ARGV[1]")
    await redis_client.script_flush()
    before = await _loads(redis_client)
    answers = await asyncio.gather(*(script(args=[n]) for n in range(50)))
    assert answers == [str(n).encode() for n in range(50)]
    assert await _loads(redis_client) == before + 1


async def test_a_script_lost_by_redis_is_loaded_again_on_its_next_call(
    redis_client: Redis,
) -> None:
    script = Script(redis_client, "return KEYS[1]")
    assert await script(keys=["a"]) == b"a"
    await redis_client.script_flush()
    assert await script(keys=["b"]) == b"b"


async def test_the_scripts_rfc3339_is_the_codecs_to_the_millisecond(redis_client: Redis) -> None:
    prelude = (resources.files("agentfield_arq.core") / "lua" / "common.lua").read_text()
    script = Script(redis_client, prelude + "\nreturn rfc3339(tonumber(ARGV[1]))")
    # The epoch, leap days (a century's that is one, and one's that is not), a year's end.
    moments = [0, 951_782_400_123, 4_107_542_400_000 - 1, 1_709_164_800_999, 1_796_145_382_352]
    for ms in moments:
        assert (await script(args=[ms])).decode() == rfc3339(ms)
