"""The benchmarks' inline agent: answers every request at once with a small JSON body.

A raw asyncio server (uvloop and httptools, both installed with uvicorn[standard]) rather than
a Starlette app, so that the agent costs as little CPU as possible on a shared 2-core machine:
the figures are about the control plane, not the agent. The same server is the trivially fast
endpoint against which the load generator's own ceiling is measured.

Run as `python -m bench.agent --port N`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import httptools
import uvloop

BODY = b'{"answer":42,"source":"bench-agent"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class AgentProtocol(asyncio.Protocol):
    """One keep-alive connection: each complete request gets the canned answer."""

    def __init__(self) -> None:
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

    def on_message_complete(self) -> None:
        """httptools callback: the request (with its body) has been read."""
        if self.transport is not None:
            self.transport.write(RESPONSE)


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:`port` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(AgentProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Entry point of `python -m bench.agent`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
