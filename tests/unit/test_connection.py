"""Commands packed by hiredis are byte for byte the ones redis-py would have sent."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from agentfield_arq.core.connection import PackedConnection, connect
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
