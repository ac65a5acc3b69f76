"""uvicorn's httptools protocol with the limits it lacks, for the API's server.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) and, with h11 only, the
size of unfinished headers (`h11_max_incomplete_event_size`). With httptools (faster, and
what `uvicorn[standard]` picks) nothing bounds the headers, and no timer runs while a
connection sends its first request or the headers of the next one: a peer can hold a
descriptor for ever and make the parser buffer megabytes. This subclass adds, per connection:

- the request line and headers: at most `max_header_bytes` bytes and `max_headers` headers,
  else `431 headers_too_large` and the connection is closed;
- `header_timeout_s` from the connection's start (or its first byte after a response) to
  the end of the headers, else `408 request_timeout` (nothing if it sent nothing) and close;
- at most `max_connections` open at once: one more is closed on arrival;
- a request the parser cannot read is answered `400 invalid_request` in our error shape
  (uvicorn answers it in plain text).

The body's own deadline is `api/edge.py`'s; uvicorn already pauses reading a body the app
has not taken.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import encode
from agentfield_arq.kernel.errors import HeadersTooLarge, InvalidRequest, RequestTimeout

END_OF_HEADERS = b"\r\n\r\n"


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request that is over a limit (httptools
    turns it into an HttpParserCallbackError)."""


def _answer(status: int, code: str, message: str) -> bytes:
    body = encode({"error": message, "code": code})
    head = (
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head.encode() + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """See the module's docstring; `protocol_class(settings)` sets the limits."""

    # In slots, not in the instance's dict: uvicorn's 28 attributes fit the dict that instances
    # of one class share keys in (296 bytes); five more made each connection's its own, of
    # 1,584 bytes (bench/waiters.py: 1.3 KB of every open connection).
    __slots__ = ("_header_bytes", "_header_count", "_header_timer", "_reading_headers", "_tail")

    limits: Settings = Settings()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._tail = b""
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection in, close it at once when over the cap, else start the clock."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.close()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the header timer with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count header bytes before the parser buffers them; refuse past the limits."""
        if self.transport.is_closing():
            return
        if self._reading_headers:
            if self._header_timer is None:
                self._arm_header_timer()
            seen = self._tail + data
            end = seen.find(END_OF_HEADERS)
            self._header_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
            self._tail = seen[-3:]
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse_headers(f"over {self.limits.max_header_bytes} bytes")
                return
        # uvicorn's own data_received, but for the refusal: it answers any parser error 400.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._header_count > self.limits.max_headers:
                self._refuse_headers(f"more than {self.limits.max_headers} headers")
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header; one over the limit stops the parser."""
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The headers are in: stop their clock, hand the request to uvicorn (whose response
        cycle writes through `_Coalesced`)."""
        self._reading_headers = False
        self._cancel_header_timer()
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before:  # a new cycle (not an upgrade), whose task has not run yet
            self.cycle.transport = _Coalesced(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        """The next bytes on this connection are the next request's headers."""
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = self._header_count = 0
        self._tail = b""

    def send_400_response(self, msg: str) -> None:
        """A request the parser cannot read, answered in our error shape, then closed."""
        self.transport.write(_answer(400, InvalidRequest.code, msg))
        self.transport.close()

    def _refuse_headers(self, why: str) -> None:
        message = f"request line and headers: {why} (max_header_bytes, max_headers)"
        self.transport.write(_answer(431, HeadersTooLarge.code, message))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_s, self._header_timeout
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._reading_headers:
            return
        if self._header_bytes:
            message = (
                f"request headers: not received within {self.limits.header_timeout_s:g}s "
                "(header_timeout_s)"
            )
            self.transport.write(_answer(408, RequestTimeout.code, message))
        self.transport.close()


class _Coalesced:
    """The connection's transport as one response cycle writes to it: what the cycle writes in
    one loop turn goes out in one write. uvicorn writes the status line and headers, then the
    body, each with a system call of its own (and the peer reads two segments): ~8% of the API's
    CPU per enqueue (bench/). A streamed body still goes out as it comes, a turn at most later.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Queue `data` for this turn's write."""
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def close(self) -> None:
        """Write what is queued, then close the connection."""
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing (or closed)."""
        return self._transport.is_closing()

    def _flush(self) -> None:
        if self._pending:
            if not self._transport.is_closing():
                self._transport.write(b"".join(self._pending))
            self._pending.clear()


def protocol_class(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, with the limits of `settings`."""
    return type("ApiHttpProtocol", (BoundedHttpToolsProtocol,), {"limits": settings})
