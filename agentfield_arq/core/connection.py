"""The Redis client of every process (`connect`), whose commands hiredis packs in C, and
which gives up on a stalled Redis after its timeouts; to one server (`redis://`, `rediss://`,
`unix://`) or to the primary that Redis Sentinel names.

Sentinel URLs (`redis+sentinel://host:port,.../service/db`, read by core/sentinel.py): every
connection asks the sentinels for the current primary when it connects; after a failover, a
connection to the old primary fails (or is refused as read-only) and the next one finds the
new primary.

redis-py's synchronous client already packs commands with `hiredis.pack_command`; its asyncio
client still builds each command's bytes in Python, argument by argument. Measured with the
benchmark (bench/): that packing was 16% of the API's CPU at 4,000 enqueues/s, and 1 ms of the
batch-status read of 1,000 ids (an MGET of 2,000 keys), which hiredis packs in 0.1 ms. The
bytes on the wire are identical.

Without a socket timeout, a command sent to a Redis that stalls (SIGSTOP, a full disk, a
network partition) waits forever, and so does the request that sent it, `/health` included.
Every client therefore has a connect timeout and a command timeout (`Settings`); a client that
blocks on purpose (XREAD BLOCK) adds its block time to the command timeout. A command that
times out raises `redis.exceptions.TimeoutError`, which the API answers 503, and its connection
is dropped, so that the next command connects afresh.

A worker caps its pool (`Settings.worker_redis_connections`): redis-py's own pool opens one
connection more whenever all are busy, and a worker with thousands of slots kept reaching new
highs (575 connections after 10,000 executions, 1,041 after 50,000), its RSS growing with them
(1.22 x from 10,000 to 50,000) while nothing else grew; capped at 256, 1.00 x (README, Memory).
A command beyond the cap waits for a connection in turn, with no limit of its own: every
connection in use is released within its command's timeout (a holder runs only its own round
trips on it and never waits for a second one meanwhile), so the wait is bounded by the
commands ahead of it. A limit of its own was tried and withdrawn: on a loaded machine arq's
`finish_job` waited past a 3 s limit tens of thousands of times, failing jobs that Redis would
have served.

A new connection sends nothing before its first command (no `CLIENT SETINFO`): redis-py's pool
sets up connections one at a time under a lock, so with a stalled Redis each handshake would
hold every other request for its whole timeout, and a request's wait would grow with the number
of requests in flight (measured: a health probe answered after 1.8 s with a 1 s timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import hiredis
import redis
import redis.sentinel
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from agentfield_arq.core.channel import Channel
from agentfield_arq.core.sentinel import sentinel_address
from agentfield_arq.core.settings import Settings

DEFAULTS = Settings()


def _pack(args: tuple[EncodableT, ...]) -> list[bytes]:
    """The command in the Redis protocol, as one buffer."""
    # As redis-py does: a command name holding its subcommand ("CLIENT SETINFO") is sent as
    # separate arguments.
    head = args[0]
    if isinstance(head, str):
        args = (*head.encode().split(), *args[1:])
    elif isinstance(head, bytes) and b" " in head:
        args = (*head.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]  # type: ignore[arg-type]  # its stub types a 1-tuple
    except TypeError as exc:  # None, bool, or a type Redis cannot hold
        raise DataError(str(exc)) from exc


# uvloop's words for a write to a transport it has closed (a reset from a killed Redis).
_CLOSED_TRANSPORT = "the handler is closed"


class _Lean(AbstractConnection):
    """redis-py's command round trip without the two loop turns it adds to every command.

    - Sending: redis-py runs each write under `asyncio.wait_for`, a task of its own per
      command. A write the socket takes at once has nothing to wait for; only one that leaves
      bytes buffered (or meets a closing transport) waits for the drain, under the same
      timeout and with the same errors.
    - A write to a transport uvloop has closed: when Redis dies, uvloop closes the transport
      as soon as it reads the reset, and refuses the next write with a RuntimeError (asyncio's
      own loop drops it, and the read fails with `ConnectionError`). It is raised as the
      `ConnectionError` it is: a request is answered 503, not 500, and a worker does not take
      an outage for a bug.
    - Taking a connection from the pool: redis-py checks that nothing is left to read with a
      read under a zero timeout, which suspends the request until the next loop turn and then
      cancels it. Whatever a closed or dirty connection left is already in the stream or the
      parser's buffer (the loop fed it there), so those are looked at without reading.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        """Send `command` (as redis-py does), waiting only if the socket did not take it all."""
        writer = self._writer
        try:
            if (
                writer is None
                or not isinstance(command, list)
                or (check_health and self._health_check_due())
            ):
                await super().send_packed_command(command, check_health)
                return
            writer.writelines(command)
        except RuntimeError as exc:
            if _CLOSED_TRANSPORT not in str(exc):
                raise
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        transport = writer.transport
        if transport.is_closing() or transport.get_write_buffer_size():
            await self._drain()

    def _health_check_due(self) -> bool:
        return bool(self.health_check_interval) and (
            asyncio.get_running_loop().time() > self.next_health_check
        )

    async def _drain(self) -> None:
        assert self._writer is not None
        try:
            await asyncio.wait_for(self._writer.drain(), self.socket_timeout)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {e}") from e
        except BaseException:
            await self.disconnect(nowait=True)
            raise

    async def can_read_destructive(self) -> bool:
        """Whether anything waits to be read (a reply nobody read, or the server's close)."""
        stream = self._reader
        parser = getattr(self._parser, "_reader", None)
        if stream is None or not isinstance(parser, hiredis.Reader):
            found: bool = await super().can_read_destructive()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            return found
        return bool(
            parser.has_data() or stream.at_eof() or stream.exception() is not None or stream._buffer  # type: ignore[attr-defined]  # asyncio keeps no public count of it
        )


class PackedConnection(_Lean, Connection):
    """`redis.asyncio.Connection` with hiredis' command packer (plain TCP; TLS and Unix-socket
    URLs keep redis-py's own connection classes)."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        """The command in the Redis protocol, as one buffer."""
        return _pack(args)


class PackedSentinelConnection(_Lean, SentinelManagedConnection):
    """A connection to the primary that Sentinel names, with hiredis' command packer."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        """The command in the Redis protocol, as one buffer."""
        return _pack(args)


def timeouts(settings: Settings, block_s: float = 0.0) -> dict[str, Any]:
    """redis-py's connection arguments for a client whose longest blocking command blocks
    `block_s` seconds (0: it never blocks): the timeouts, and no handshake commands."""
    return {
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_command_timeout_s + block_s,
        "lib_name": None,
        "lib_version": None,
    }


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool with the blocking pool's cap: a command beyond `max_connections` waits
    for a connection."""


def connection_pool(
    url: str,
    settings: Settings = DEFAULTS,
    *,
    block_s: float = 0.0,
    max_connections: int | None = None,
) -> ConnectionPool:
    """The connection pool of `connect` (bytes, hiredis packing, the timeouts of `settings`),
    also arq's in the workers; a Sentinel-managed one for a `redis+sentinel://` URL, whose
    sentinels are asked with the same timeouts. With `max_connections`, at most that many
    connections are open, and a command beyond them waits for one (see the module's
    docstring)."""
    capped: dict[str, Any] = {}
    if max_connections is not None:
        capped = {"max_connections": max_connections, "timeout": None}
    address = sentinel_address(url)
    if address is None:
        kind = ConnectionPool if max_connections is None else BlockingConnectionPool
        pool: ConnectionPool = kind.from_url(
            url,
            decode_responses=False,
            health_check_interval=30,
            connection_class=PackedConnection,
            **timeouts(settings, block_s),
            **capped,
        )
        return pool
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        address.sentinels, sentinel_kwargs=timeouts(settings)
    )
    sentinel_kind = (
        SentinelConnectionPool if max_connections is None else BlockingSentinelConnectionPool
    )
    return sentinel_kind(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        address.service,
        sentinel,
        connection_class=PackedSentinelConnection,
        db=address.db,
        username=address.username,
        password=address.password,
        decode_responses=False,
        health_check_interval=30,
        **timeouts(settings, block_s),
        **capped,
    )


class Client(Redis):
    """A client whose Lua scripts may travel on a `Channel` (core/channel.py) beside its pool."""

    channel: Channel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the channel, then the pool as redis-py does."""
        if self.channel is not None:
            self.channel.close()
        await super().aclose(close_connection_pool)


def connect(
    url: str, settings: Settings = DEFAULTS, *, block_s: float = 0.0, channel: bool = False
) -> Redis:
    """A Redis client returning bytes, so that stored JSON documents pass through untouched,
    with the timeouts of `settings` (see `timeouts`); through Sentinel when `url` is a
    `redis+sentinel://` URL. With `channel`, its scripts are pipelined on one connection
    (core/channel.py; plain TCP only: over TLS, a Unix socket or Sentinel, they use the pool)."""
    # from_pool: closing the client closes its pool, as with Redis.from_url.
    pool = connection_pool(url, settings, block_s=block_s)
    client = Client(connection_pool=pool)
    client.auto_close_connection_pool = True  # as Redis.from_pool
    if channel and pool.connection_class is PackedConnection:
        client.channel = Channel(pool.connection_kwargs, settings)
    return client


def connect_sync(url: str, settings: Settings = DEFAULTS) -> redis.Redis:
    """A synchronous client of the same Redis as `connect(url, settings)`, with the same timeouts
    and through the same sentinels: for a thread that must reach Redis while the event loop is
    busy (the worker's lease beat, core/lease.py)."""
    address = sentinel_address(url)
    if address is None:
        client: redis.Redis = redis.Redis.from_url(
            url, decode_responses=False, health_check_interval=30, **timeouts(settings)
        )
        return client
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        address.sentinels, sentinel_kwargs=timeouts(settings)
    )
    primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]  # as above
        address.service,
        db=address.db,
        username=address.username,
        password=address.password,
        decode_responses=False,
        health_check_interval=30,
        **timeouts(settings),
    )
    return primary


def reraise_cancel() -> None:
    """Called by loops that retry Redis errors, at each turn and where they catch one: if the
    task is being cancelled, raise CancelledError. A read cancelled inside redis-py's timeout
    handling can end in a Redis error, or even in a plain return, instead of CancelledError
    (seen: the API's stream follower went on after its cancel, and the API never shut down);
    the task's own count of cancel requests is what cannot be lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
