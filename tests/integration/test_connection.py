"""The Redis connection under faults of the socket beneath it."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError

from agentfield_arq.core.connection import PackedConnection


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
