"""The benchmarks' deferred agent: answers every call `202` at once and reports its outcome on
the API's callback route (`POST /api/v1/executions/{id}/status`, with the call's
`X-Callback-Token`) after `--delay` seconds, as an agent doing slow work would.

Raw asyncio (uvloop and httptools) like `bench.agent`, so that it costs the shared cores as little
as an agent can. Callbacks go out over a pool of up to `--connections` keep-alive connections
to the API, each sending the next report as soon as the previous one is answered. `GET /stats`
answers, per execution id, the wall-clock times (Unix seconds) at which its first call arrived,
its last report was sent and answered; how many calls repeated an execution already called; and
the agent's own CPU seconds.

Run as `python -m bench.later --port N --api-port M`; it listens on and calls 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import time
from typing import cast

import httptools
import uvloop

from bench.load import HOST

ACCEPTED = b'{"status":"processing"}'
REPORT = b'{"status":"succeeded","result":{"answer":42,"source":"bench-later"}}'


def _response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


class Reports:
    """Callbacks due to be sent, the connections sending them, and the times of each."""

    def __init__(self, api_port: int, connections: int) -> None:
        self.api_port = api_port
        self.connections = connections
        self.open = 0
        self.opening: set[asyncio.Task[object]] = set()
        self.due: collections.deque[tuple[str, str]] = collections.deque()
        self.idle: list[Reporter] = []
        self.times: dict[str, list[float]] = {}
        self.repeated = 0

    def called(self, execution_id: str, token: str, delay_s: float) -> None:
        """A call arrived: its report is due in `delay_s`."""
        if execution_id in self.times:  # called again (handed back, or its worker deemed lost)
            self.repeated += 1
        else:
            self.times[execution_id] = [time.time(), 0.0, 0.0]
        asyncio.get_running_loop().call_later(delay_s, self.send, execution_id, token)

    def send(self, execution_id: str, token: str) -> None:
        """Hand the report to an idle connection, or queue it for the next one to free (opening
        one more while the pool is not full: the API closes idle ones after its keep-alive)."""
        if self.idle:
            self.idle.pop().report(execution_id, token)
            return
        self.due.append((execution_id, token))
        if self.open < self.connections:
            self.open += 1
            loop = asyncio.get_running_loop()
            opening = loop.create_connection(lambda: Reporter(self), HOST, self.api_port)
            self.opening.add(task := loop.create_task(opening))
            task.add_done_callback(self.opening.discard)

    def free(self, reporter: Reporter) -> None:
        """A connection is ready: give it the next report, or park it."""
        if self.due:
            reporter.report(*self.due.popleft())
        else:
            self.idle.append(reporter)

    def lost(self, reporter: Reporter) -> None:
        """A connection closed: forget it, and send again what it had not had answered."""
        self.open -= 1
        if reporter in self.idle:
            self.idle.remove(reporter)
        if reporter.pending is not None:
            self.send(*reporter.pending)


class Reporter(asyncio.Protocol):
    """One keep-alive connection to the API sending reports one at a time."""

    def __init__(self, reports: Reports) -> None:
        self.reports = reports
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: tuple[str, str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Ready for a report."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.reports.free(self)

    def report(self, execution_id: str, token: str) -> None:
        """Send one execution's report."""
        assert self.transport is not None
        self.pending = (execution_id, token)
        self.reports.times[execution_id][1] = time.time()
        head = (
            f"POST /api/v1/executions/{execution_id}/status HTTP/1.1\r\n"
            f"Host: {HOST}:{self.reports.api_port}\r\nX-Callback-Token: {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(REPORT)}\r\n\r\n"
        )
        self.transport.write(head.encode() + REPORT)

    def data_received(self, data: bytes) -> None:
        """Feed the response parser."""
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        """httptools callback: the report was answered."""
        assert self.pending is not None
        self.reports.times[self.pending[0]][2] = time.time()
        self.pending = None
        self.reports.free(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the pool."""
        self.reports.lost(self)


class Called(asyncio.Protocol):
    """One keep-alive connection from a worker: every call is answered 202 at once."""

    def __init__(self, reports: Reports, delay_s: float) -> None:
        self.reports = reports
        self.delay_s = delay_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: dict[bytes, bytes] = {}
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport to answer on."""
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a malformed request closes the connection."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        """httptools callback: a new request on this connection."""
        self.headers = {}
        self.url = b""

    def on_url(self, url: bytes) -> None:
        """httptools callback: (part of) the request target."""
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools callback: one header."""
        self.headers[name.lower()] = value

    def on_message_complete(self) -> None:
        """httptools callback: answer `/stats`, or take the call and answer 202."""
        assert self.transport is not None
        if self.url == b"/stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = {
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "times": self.reports.times,
                "repeated": self.reports.repeated,
            }
            self.transport.write(_response(b"200 OK", json.dumps(stats).encode()))
            return
        execution_id = self.headers.get(b"x-execution-id", b"").decode()
        token = self.headers.get(b"x-callback-token", b"").decode()
        self.reports.called(execution_id, token, self.delay_s)
        self.transport.write(_response(b"202 Accepted", ACCEPTED))


async def serve(port: int, api_port: int, delay_s: float, connections: int) -> None:
    """Listen on 127.0.0.1:`port` until cancelled."""
    reports = Reports(api_port, connections)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Called(reports, delay_s), HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Entry point of `python -m bench.later`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.api_port, args.delay, args.connections))


if __name__ == "__main__":
    main()
