"""The benchmarks' inline agent: answers every request with a small JSON body, at once or, with
`--delay-s`, after that long (a slow agent that answers inline: the connection stays open and
idle meanwhile, as a model call keeps it).

A raw asyncio server (uvloop and httptools, both installed with uvicorn[standard]) rather than
a Starlette app, so that the agent costs as little CPU as possible on a shared 2-core machine:
the figures are about the control plane, not the agent. The same server is the trivially fast
endpoint against which the load generator's own ceiling is measured.

`GET /calls` answers how many other requests it has answered or is answering, as a JSON
number: the slow drain reads it before and after, so that an execution called twice (its worker
deemed lost and its executions handed back while the first call was still open) is counted.

Run as `python -m bench.agent --port N [--delay-s S]`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import httptools
import uvloop

BODY = b'{"answer":42,"source":"bench-agent"}'
CALLS = b"/calls"


def _response(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


RESPONSE = _response(BODY)


class Count:
    """Requests answered (or being answered) by this process, `GET /calls` aside."""

    def __init__(self) -> None:
        self.calls = 0


class AgentProtocol(asyncio.Protocol):
    """One keep-alive connection: each complete request gets the canned answer."""

    def __init__(self, count: Count, delay_s: float = 0.0) -> None:
        self.count = count
        self.delay_s = delay_s
        self.url = b""
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport to answer on."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a malformed request closes the connection."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        """httptools callback: (part of) the request's target."""
        self.url += url

    def on_message_complete(self) -> None:
        """httptools callback: the request (with its body) has been read."""
        url, self.url = self.url, b""
        if url == CALLS:
            if self.transport is not None:
                self.transport.write(_response(str(self.count.calls).encode()))
            return
        self.count.calls += 1
        if self.delay_s:
            asyncio.get_running_loop().call_later(self.delay_s, self._answer)
        else:
            self._answer()

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def serve(port: int, delay_s: float = 0.0) -> None:
    """Listen on 127.0.0.1:`port` until cancelled, answering each request after `delay_s`."""
    loop = asyncio.get_running_loop()
    count = Count()
    server = await loop.create_server(
        lambda: AgentProtocol(count, delay_s), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    """Entry point of `python -m bench.agent`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-s", type=float, default=0.0, help="answer each after this long")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.delay_s))


if __name__ == "__main__":
    main()
