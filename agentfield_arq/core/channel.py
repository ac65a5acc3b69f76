"""One Redis connection that carries the Lua scripts of every request in flight at once (the
API's, `connect(..., channel=True)`): the scripts that requests send in the same event loop turn
go out in one write, and their replies come back in one read.

Through redis-py's pool each script is a round trip of its own on a connection of its own: a
write and a read system call per request, in the API and in Redis, and redis-py's command path
around them (the pool, the retry wrapper, a timeout per read). At 64 requests in flight they were
a third of the API's CPU per enqueue (bench/). Here a script costs a packed buffer and a future;
Redis runs the scripts one after the other either way.

Semantics kept from redis-py's client: each command times out after the command timeout (the
oldest one waiting decides: then every command in flight fails with `TimeoutError` and the
connection is dropped, as redis-py drops a connection that timed out); a lost connection fails
what was in flight with `ConnectionError`, and the next command connects afresh within the
connect timeout; an error reply raises the exception redis-py would (`NoScriptError`...).
A caller cancelled while waiting leaves its reply to be read and dropped.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from agentfield_arq.core.settings import Settings


class Channel:
    """Commands of any number of callers on one connection to `host:port`, pipelined."""

    def __init__(self, connection_kwargs: dict[str, Any], settings: Settings) -> None:
        self.host: str = connection_kwargs.get("host", "localhost")
        self.port = int(connection_kwargs.get("port", 6379))
        self.setup: list[tuple[EncodableT, ...]] = []
        password, username = connection_kwargs.get("password"), connection_kwargs.get("username")
        if password:
            self.setup.append(("AUTH", username, password) if username else ("AUTH", password))
        if int(connection_kwargs.get("db") or 0):
            self.setup.append(("SELECT", int(connection_kwargs["db"])))
        self.connect_timeout_s = settings.redis_connect_timeout_s
        self.timeout_s = settings.redis_command_timeout_s
        self._line: _Line | None = None
        self._connecting: asyncio.Task[_Line] | None = None

    async def call(self, *args: EncodableT) -> Any:
        """Send one command and wait for its reply (raised, if Redis answered an error)."""
        try:
            packed = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub types a 1-tuple
        except TypeError as exc:  # None, bool, or a type Redis cannot hold: as redis-py says
            raise DataError(str(exc)) from exc
        line = self._line
        if line is None or line.lost:
            line = await self._connected()
        return await line.send(packed)

    async def _connected(self) -> _Line:
        # One connect for every caller that finds the channel without a connection.
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _connect(self) -> _Line:
        loop = asyncio.get_running_loop()
        line: _Line | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, line = await loop.create_connection(
                    lambda: _Line(self.timeout_s), self.host, self.port
                )
                for command in self.setup:  # AUTH, SELECT: an error reply raises here
                    await line.send(hiredis.pack_command(command))  # type: ignore[arg-type]  # as above
        except BaseException as exc:
            if line is not None:
                line.drop(RedisConnectionError, "the connection's setup failed")
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError(f"Timeout connecting to {self.host}:{self.port}") from None
            if isinstance(exc, OSError):
                message = f"Error connecting to {self.host}:{self.port}: {exc}"
                raise RedisConnectionError(message) from exc
            raise
        self._line = line
        return line

    def close(self) -> None:
        """Drop the connection (what is in flight fails with ConnectionError)."""
        if self._line is not None:
            self._line.drop(RedisConnectionError, "the channel was closed")
            self._line = None


class _Line(asyncio.Protocol):
    """The connection: replies matched to callers in the order their commands were sent."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error
        )
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The connection is up: commands may be written."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command for this loop turn's write; its reply's future."""
        if self.lost:
            raise RedisConnectionError("Connection to Redis lost")
        future = self.loop.create_future()
        deadline = self.loop.time() + self.timeout_s
        self.waiting.append((future, deadline))
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(packed)
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._expire)
        return future

    def _flush(self) -> None:
        # A transport uvloop has closed refuses writes (RuntimeError); connection_lost follows
        # and fails the commands queued.
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.lost and self.out:
            transport.write(b"".join(self.out))
        self.out.clear()

    def data_received(self, data: bytes) -> None:
        """Hand each complete reply to the oldest caller waiting."""
        self.reader.feed(data)
        try:
            reply = self.reader.gets()
            while reply is not False:
                future, _ = self.waiting.popleft()
                if not future.done():
                    # redis-py's parse_error makes every error reply an exception: a
                    # ResponseError, or a ConnectionError for LOADING, auth and the like.
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                reply = self.reader.gets()
        except (InvalidResponse, IndexError) as exc:  # a reply nobody asked for, or garbage
            self.drop(RedisConnectionError, f"Protocol error from Redis: {exc!r}")

    def _expire(self) -> None:
        self.timer = None
        if not self.waiting:
            return
        _, deadline = self.waiting[0]
        if deadline <= self.loop.time():
            self.drop(RedisTimeoutError, "Timeout reading from Redis")
        else:
            self.timer = self.loop.call_at(deadline, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every caller still waiting."""
        self.drop(RedisConnectionError, f"Connection to Redis lost: {exc or 'closed'}")

    def drop(self, error: type[Exception], message: str) -> None:
        """Fail what is in flight with `error` and close; the channel connects anew."""
        self.lost = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error(message))
        if self.transport is not None:
            self.transport.abort()
