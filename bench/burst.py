"""A burst of requests, one per connection: N keep-alive HTTP/1.1 connections are opened first,
then each sends one request at the same moment and waits for its answer. Prints one JSON object:
per request its wall-clock send and answer times (Unix seconds), status and `X-Execution-ID`,
and the generator's own CPU seconds while the burst ran.

It runs in its own process (`python -m bench.burst ...`) and is a raw asyncio client (uvloop
and httptools), for the reason `bench.load` gives: on a 2-core machine the client shares the CPU
with the server it measures. The connections are opened before the clock starts, as clients
that keep connections open would have them; what is measured is the requests.

Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import cast

import httptools
import uvloop

from bench.load import HOST, build_request

# Connections opened at once while the burst is prepared (a listen backlog's worth at most).
CONNECT_AT_ONCE = 256
# Of an answer other than 200, this much of its body is kept (it says why).
BODY_KEPT = 300
REFUSALS_KEPT = 5


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Request(asyncio.Protocol):
    """One connection sending one request; `answered` resolves when its answer is complete."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answered = asyncio.get_running_loop().create_future()
        self.sent = 0.0
        self.execution_id = ""
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport until the burst starts."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes) -> None:
        """Send the request now."""
        assert self.transport is not None
        self.sent = time.time()
        if self.transport.is_closing():  # the server closed it on arrival (over its cap)
            self.connection_lost(None)
            return
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        """Feed the response parser."""
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools callback: keep the execution id the API names."""
        if name.lower() == b"x-execution-id":
            self.execution_id = value.decode()

    def on_body(self, body: bytes) -> None:
        """httptools callback: keep the start of the body (the reason of a refusal)."""
        if len(self.body) < BODY_KEPT:
            self.body += body[: BODY_KEPT - len(self.body)]

    def on_message_complete(self) -> None:
        """httptools callback: the whole answer is in."""
        if not self.answered.done():
            self.answered.set_result((time.time(), self.parser.get_status_code()))

    def connection_lost(self, exc: Exception | None) -> None:
        """A connection closed before its answer counts as status 0."""
        if not self.answered.done():
            self.answered.set_result((time.time(), 0))


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Connect, fire, collect."""
    loop = asyncio.get_running_loop()
    request = build_request("POST", args.port, args.path, args.body.encode())
    requests: list[Request] = []
    for start in range(0, args.count, CONNECT_AT_ONCE):
        opened = await asyncio.gather(
            *(
                loop.create_connection(Request, HOST, args.port)
                for _ in range(min(CONNECT_AT_ONCE, args.count - start))
            )
        )
        requests += [protocol for _transport, protocol in opened]
    cpu_before = _cpu_s()
    for one in requests:
        one.send(request)
    answers = await asyncio.wait_for(
        asyncio.gather(*(one.answered for one in requests)), args.timeout
    )
    cpu_s = _cpu_s() - cpu_before
    for one in requests:
        assert one.transport is not None
        one.transport.close()
    return {
        "cpu_s": cpu_s,
        "refusals": sorted(
            {
                one.body.decode(errors="replace")
                for one, (_, status) in zip(requests, answers, strict=True)
                if status != 200
            }
        )[:REFUSALS_KEPT],
        "answers": [
            [one.sent, answered, status, one.execution_id]
            for one, (answered, status) in zip(requests, answers, strict=True)
        ],
    }


def main() -> None:
    """Entry point of `python -m bench.burst`; prints the outcome as JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
