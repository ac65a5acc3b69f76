"""The command round trip of `connect`'s clients (core/connection.py): under faults of the socket
beneath it, and against a real server, where the checks that redis-py makes with extra loop
turns are still made."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfield_arq.core.connection import PackedConnection, connect
from agentfield_arq.core.settings import Settings

# A command that no socket buffer takes at once.
LARGE = b"x" * (64 * 1024 * 1024)


def test_a_write_to_a_transport_uvloop_closed_is_a_connection_error() -> None:
    # A killed Redis resets the socket; uvloop closes the transport when it reads that, and
    # refuses the next write with a RuntimeError. Here the transport is aborted under the
    # connection, as uvloop does then; the server only accepts the socket.
    async def scenario() -> BaseException:
        accepted: list[asyncio.StreamWriter] = []

        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = PackedConnection(host="127.0.0.1", port=port, lib_name=None, lib_version=None)
        try:
            connecting = connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            await asyncio.wait_for(connecting, 10)
            assert connection._writer is not None
            connection._writer.transport.abort()
            with pytest.raises(RedisConnectionError) as caught:
                await asyncio.wait_for(connection.send_command("PING"), 10)
            return caught.value
        finally:
            server.close()
            for writer in accepted:
                writer.transport.abort()

    error = uvloop.run(scenario())
    assert isinstance(error.__cause__, RuntimeError)


async def test_a_pooled_connection_that_the_server_closed_is_replaced_before_the_next_command(
    redis_url: str,
) -> None:
    client = connect(redis_url)
    killer = connect(redis_url)
    try:
        first = await client.client_id()
        (connection,) = client.connection_pool._available_connections
        assert connection._reader is not None
        await killer.client_kill_filter(_id=first)
        async with asyncio.timeout(5):  # the close has reached the client's stream
            assert await connection._reader.read(1) == b""
        assert await client.client_id() != first
    finally:
        await client.aclose()
        await killer.aclose()


async def test_a_write_the_socket_cannot_take_at_once_waits_within_the_command_timeout() -> None:
    done = asyncio.Event()
    handlers: list[asyncio.Task[None] | None] = []

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())
        writer.write(b"+PONG\r\n+PONG\r\n")  # the first PING's and its health check's
        await done.wait()
        writer.close()

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0", Settings(redis_command_timeout_s=0.3))
    assert await client.ping()
    (connection,) = client.connection_pool._available_connections
    assert connection._writer is not None
    transport = connection._writer.transport
    try:
        with pytest.raises(RedisTimeoutError, match="writing"):
            await client.set("k", LARGE)
    finally:
        transport.abort()  # its buffer would never drain, nor the socket close
        await client.aclose()
        done.set()
        await asyncio.gather(*(h for h in handlers if h is not None))
        server.close()
        await server.wait_closed()
