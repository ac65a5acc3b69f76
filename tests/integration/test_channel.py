"""The scripts' channel (core/channel.py): replies matched to their callers, redis-py's errors,
timeouts and reconnects, against a real server and against one that misbehaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop
from redis.exceptions import BusyLoadingError, DataError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfield_arq.core.channel import Channel
from agentfield_arq.core.connection import Client, connect
from agentfield_arq.core.scripts import Script
from agentfield_arq.core.settings import Settings

ECHO = "return ARGV[1]"
Handler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def test_commands_sent_at_once_each_get_their_own_reply(redis_url: str) -> None:
    client = connect(redis_url, channel=True)
    assert isinstance(client, Client)
    assert client.channel is not None
    try:
        replies = await asyncio.gather(
            *(client.channel.call("EVAL", ECHO, 0, n) for n in range(500))
        )
        assert replies == [str(n).encode() for n in range(500)]
    finally:
        await client.aclose()


async def test_a_script_of_a_channel_client_runs_on_the_channel_and_loads_itself(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[object] = []
    call = Channel.call

    async def spy(self: Channel, *args: object) -> object:
        sent.append(args[0])
        return await call(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Channel, "call", spy)
    client = connect(redis_url, channel=True)
    assert isinstance(client, Client)
    assert client.channel is not None
    try:
        await client.script_flush()
        assert await Script(client, ECHO)(args=["hello"]) == b"hello"
        assert sent == ["EVALSHA", "EVALSHA"]  # unknown, loaded (by the pool), run
        with pytest.raises(NoScriptError):  # the channel raises what redis-py would
            await client.channel.call("EVALSHA", "0" * 40, 0)
        assert await client.channel.call("PING") == b"PONG"
    finally:
        await client.aclose()


async def test_a_value_redis_cannot_hold_is_a_data_error_as_with_redis_py() -> None:
    with pytest.raises(DataError):
        await Channel({"host": "127.0.0.1", "port": 1}, Settings()).call("SET", "k", None)  # type: ignore[arg-type]


def test_only_plain_tcp_clients_get_a_channel() -> None:
    assert isinstance(connect("redis://127.0.0.1:1/0", channel=True), Client)
    assert connect("redis://127.0.0.1:1/0", channel=True).channel is not None  # type: ignore[attr-defined]
    assert connect("redis://127.0.0.1:1/0").channel is None  # type: ignore[attr-defined]
    assert connect("unix:///tmp/none.sock", channel=True).channel is None  # type: ignore[attr-defined]


@pytest.fixture
async def misbehaving() -> AsyncIterator[Callable[..., Awaitable[Channel]]]:
    """A server on a free port whose n-th connection (from 0) `handler` serves; a channel to it
    (with the connection arguments given)."""
    done = asyncio.Event()
    tasks: list[asyncio.Task[None] | None] = []
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, **connection: object) -> Channel:
        count = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            tasks.append(asyncio.current_task())
            count += 1
            await handler(count - 1, reader, writer)
            await done.wait()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        kwargs = {"host": "127.0.0.1", "port": port, **connection}
        return Channel(kwargs, Settings(redis_command_timeout_s=0.3))

    yield start
    done.set()
    await asyncio.gather(*(t for t in tasks if t is not None))
    for server in servers:
        server.close()
        await server.wait_closed()


async def _pong_after_the_first(
    n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
) -> None:
    await reader.readuntil(b"PING\r\n")
    if n > 0:
        w.write(b"+PONG\r\n")


async def _close_the_first(n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"PING\r\n")
    if n == 0:
        w.transport.abort()
    else:
        w.write(b"+PONG\r\n")


async def test_a_command_not_answered_in_time_times_out_and_the_next_connects_anew(
    misbehaving: Callable[..., Awaitable[Channel]],
) -> None:
    channel = await misbehaving(_pong_after_the_first)
    with pytest.raises(RedisTimeoutError):
        await channel.call("PING")
    assert await channel.call("PING") == b"PONG"
    channel.close()


async def test_a_lost_connection_fails_what_was_in_flight_and_the_next_connects_anew(
    misbehaving: Callable[..., Awaitable[Channel]],
) -> None:
    channel = await misbehaving(_close_the_first)
    with pytest.raises(RedisConnectionError):
        await channel.call("PING")
    assert await channel.call("PING") == b"PONG"
    channel.close()


async def test_a_server_that_refuses_connections_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    channel = Channel({"host": "127.0.0.1", "port": port}, Settings())
    with pytest.raises(RedisConnectionError):
        await channel.call("PING")


async def _command(reader: asyncio.StreamReader) -> bytes:
    """One command as a client sends it (a RESP array of bulk strings), its words joined."""
    count = int((await reader.readline())[1:])
    words = []
    for _ in range(count):
        size = int((await reader.readline())[1:])
        words.append((await reader.readexactly(size + 2))[:-2])
    return b" ".join(words)


async def test_a_password_and_database_are_sent_before_the_first_command(
    misbehaving: Callable[..., Awaitable[Channel]],
) -> None:
    seen: list[bytes] = []

    async def serve(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            seen.append(await _command(reader))
            writer.write(b"+PONG\r\n" if seen[-1] == b"PING" else b"+OK\r\n")

    channel = await misbehaving(serve, password="pw", db=2)
    assert await channel.call("PING") == b"PONG"
    assert seen == [b"AUTH pw", b"SELECT 2", b"PING"]
    channel.close()


def test_a_command_on_a_transport_uvloop_closed_is_a_connection_error(redis_url: str) -> None:
    # As when a killed Redis resets the socket: uvloop closes the transport, and refuses writes.
    async def scenario() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        client = connect(redis_url, channel=True)
        assert isinstance(client, Client)
        assert client.channel is not None
        try:
            assert await client.channel.call("PING") == b"PONG"
            assert client.channel._line is not None
            assert client.channel._line.transport is not None
            client.channel._line.transport.abort()
            with pytest.raises(RedisConnectionError):
                await client.channel.call("PING")
            assert await client.channel.call("PING") == b"PONG"  # connected anew
        finally:
            await client.aclose()
        return errors

    assert uvloop.run(scenario()) == []


async def test_a_redis_still_loading_its_data_raises_as_with_redis_py(
    misbehaving: Callable[..., Awaitable[Channel]],
) -> None:
    # redis-py makes LOADING a BusyLoadingError, a ConnectionError rather than a ResponseError:
    # it was handed back as a reply, and a request then failed on it with a 500.
    async def loading(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _command(reader)
        writer.write(b"-LOADING Valkey is loading the dataset in memory\r\n")

    channel = await misbehaving(loading)
    with pytest.raises(BusyLoadingError):
        await channel.call("EVALSHA", "0" * 40, 0)
    channel.close()
