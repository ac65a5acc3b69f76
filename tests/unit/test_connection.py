"""Commands packed by hiredis are byte for byte the ones redis-py would have sent."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from agentfield_arq.core.arq_bridge import arq_pool, redis_settings
from agentfield_arq.core.connection import PackedConnection, PackedSentinelConnection, connect
from agentfield_arq.core.sentinel import SentinelAddress, sentinel_address
from agentfield_arq.core.settings import Settings

COMMANDS: list[tuple[Any, ...]] = [
    ("GET", "af:exec:exec_1:status"),
    ("MGET", *(f"af:exec:exec_{n}:status" for n in range(2000))),
    ("EVALSHA", "0123abcd", 3, "k1", b"\xff\x00binary", 1.5, -3, 12345678901234567890, "é"),
    ("CLIENT SETINFO", "LIB-NAME", "redis-py"),
    (b"CONFIG GET", b"maxmemory"),
    ("SET", "k", memoryview(b"view"), "PX", 1000),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_hiredis_packs_the_same_bytes_as_redis_py(command: tuple[Any, ...]) -> None:
    ours = b"".join(PackedConnection().pack_command(*command))
    theirs = b"".join(bytes(part) for part in Connection().pack_command(*command))
    assert ours == theirs


@pytest.mark.parametrize("value", [None, True, [1]])
def test_a_value_redis_cannot_hold_is_a_data_error_as_with_redis_py(value: object) -> None:
    with pytest.raises(DataError):
        PackedConnection().pack_command("SET", "k", value)  # type: ignore[arg-type]


def test_every_client_has_the_timeouts_of_its_settings_and_a_blocking_one_adds_its_block() -> None:
    settings = Settings(redis_connect_timeout_s=0.5, redis_command_timeout_s=1.5)
    plain = connect("redis://127.0.0.1:1/0", settings).connection_pool.connection_kwargs
    blocking = connect("redis://127.0.0.1:1/0", settings, block_s=5).connection_pool
    assert (plain["socket_connect_timeout"], plain["socket_timeout"]) == (0.5, 1.5)
    assert blocking.connection_kwargs["socket_timeout"] == 6.5


def test_a_new_connection_sends_no_handshake_that_could_hold_the_pool_lock() -> None:
    kwargs = connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs
    assert (kwargs["lib_name"], kwargs["lib_version"]) == (None, None)


def test_a_sentinel_url_names_its_sentinels_service_database_and_credentials() -> None:
    address = sentinel_address("redis+sentinel://:s%40cret@10.0.0.1:26380,[::1]:5,h/mymaster/3")
    assert address == SentinelAddress(
        sentinels=[("10.0.0.1", 26380), ("::1", 5), ("h", 26379)],
        service="mymaster",
        db=3,
        password="s@cret",
    )


def test_a_plain_redis_url_is_not_a_sentinel_url() -> None:
    assert sentinel_address("redis://127.0.0.1:6380/0") is None


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("redis+sentinel://h:1", "names its service"),
        ("redis+sentinel://h:1/mymaster/x", "database is a number"),
        ("redis+sentinel://h:port/mymaster", "host:port sentinels"),
        ("redis+sentinel://h:1,,h:2/mymaster", "host:port sentinels"),
    ],
)
def test_an_unusable_sentinel_url_is_refused_naming_the_part(url: str, part: str) -> None:
    with pytest.raises(ValueError, match=part):
        sentinel_address(url)


def test_arq_is_given_the_same_sentinels_and_service() -> None:
    arq = redis_settings("redis+sentinel://a:1,b:2/cache/2")
    assert (arq.sentinel, arq.host, arq.sentinel_master, arq.database) == (
        True, [("a", 1), ("b", 2)], "cache", 2)  # fmt: skip
    assert redis_settings("redis://a:7/1").host == "a"


def test_a_sentinel_client_packs_with_hiredis_and_has_the_timeouts_of_its_settings() -> None:
    settings = Settings(redis_connect_timeout_s=0.5, redis_command_timeout_s=1.5)
    pool = connect("redis+sentinel://127.0.0.1:1/mymaster/4", settings, block_s=5).connection_pool
    assert pool.connection_class is PackedSentinelConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (
        4,
        0.5,
        6.5,
    )
    [sentinel] = pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 1.5


async def test_closing_a_client_closes_its_pool() -> None:
    for url in ("redis://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/mymaster"):
        client = connect(url)
        assert client.auto_close_connection_pool
        await client.aclose()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/mymaster"])
def test_a_workers_pool_is_capped_and_waits_for_a_connection_without_a_limit_of_its_own(
    url: str,
) -> None:
    pool = arq_pool(Settings(redis_url=url, worker_redis_connections=7), "q").connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (7, None)
    assert pool.connection_class in (PackedConnection, PackedSentinelConnection)


def test_other_clients_keep_redis_pys_unbounded_pool() -> None:
    assert not isinstance(connect("redis://127.0.0.1:1/0").connection_pool, BlockingConnectionPool)
