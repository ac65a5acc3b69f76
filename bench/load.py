"""The load generator: N keep-alive HTTP/1.1 connections, each sending the next request as soon
as the previous answer is complete (a closed loop), for a fixed time. Prints one JSON object.

It runs in its own process (`python -m bench.load ...`), and is a raw asyncio client (uvloop
and httptools) rather than httpx: on a 2-core machine the generator shares the CPU with the
server it measures, so it has to cost far less per request than the server does. Its ceiling
against a trivially fast endpoint (`bench.agent`) is reported beside the figures.

Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import httptools
import uvloop

from bench.stats import percentile

# The admin key of the benchmark's deployment (AGENTFIELD_ARQ_ADMIN_KEY): compared in memory by
# the API, so that the figures stay comparable with runs from before auth.
ADMIN_KEY = "afk_bench-admin-key-of-every-benchmark-run"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# What the httpx clients of the benchmark send with every request (their bodies are JSON).
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}

HOST = "127.0.0.1"
# The repository, where `bench` is found (it is not an installed package).
ROOT = str(Path(__file__).resolve().parent.parent)


class Generator:
    """Shared state of all connections: the clock window and what was measured in it."""

    def __init__(self, request: bytes, warmup_s: float, duration_s: float) -> None:
        self.request = request
        now = time.perf_counter()
        self.measure_from = now + warmup_s
        self.measure_until = self.measure_from + duration_s
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.failures = 0
        self.done = asyncio.get_running_loop().create_future()
        self.open = 0

    def record(self, started: float, finished: float, status: int) -> bool:
        """Count one answer; returns whether the connection should send another request."""
        if self.measure_from <= started and finished <= self.measure_until:
            self.latencies.append(finished - started)
            self.statuses[status] += 1
        return finished < self.measure_until

    def closed(self, failed: bool) -> None:
        """One connection is finished (at the end of the window, or broken)."""
        self.failures += failed
        self.open -= 1
        if self.open == 0 and not self.done.done():
            self.done.set_result(None)


class Connection(asyncio.Protocol):
    """One closed-loop client connection."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.started = 0.0
        self.finished_cleanly = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the first request at once."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        self.transport.write(self.generator.request)

    def data_received(self, data: bytes) -> None:
        """Feed the response parser; a protocol error ends the connection as failed."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        """httptools callback: one whole answer has arrived."""
        finished = time.perf_counter()
        status = self.parser.get_status_code()
        if self.generator.record(self.started, finished, status):
            self._send()
        else:
            self.finished_cleanly = True
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the generator; a connection closed before the end counts as a failure."""
        self.generator.closed(failed=not self.finished_cleanly)


def build_request(method: str, port: int, path: str, body: bytes, key: str = ADMIN_KEY) -> bytes:
    """The raw bytes of one keep-alive request (sent again and again), with `key` (the run's
    admin key unless told)."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class KeepAlive:
    """One keep-alive HTTP/1.1 connection for requests made one at a time, with as little client
    work as an HTTP client can do (for figures where the client should not be the cost), sent
    with `key` (the run's admin key by default)."""

    def __init__(self, port: int, key: str = ADMIN_KEY) -> None:
        self.port = port
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> KeepAlive:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one request and read its whole answer; (status, body)."""
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(build_request("POST", self.port, path, body, self.key))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(lines[0].split()[1]), await self.reader.readexactly(length)


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Open the connections, let them run through warm-up and the window, summarise."""
    request = build_request(args.method, args.port, args.path, args.body.encode(), args.key)
    generator = Generator(request, args.warmup, args.duration)
    loop = asyncio.get_running_loop()
    generator.open = args.connections
    for _ in range(args.connections):
        await loop.create_connection(lambda: Connection(generator), HOST, args.port)
    await asyncio.wait_for(generator.done, args.warmup + args.duration + 30)
    latencies = sorted(generator.latencies)
    ok = sum(n for status, n in generator.statuses.items() if 200 <= status < 300)
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(generator.statuses.items())},
        "failed_connections": generator.failures,
        "duration_s": args.duration,
        "rps": ok / args.duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
    }


async def measure(
    port: int,
    path: str,
    body: bytes,
    *,
    connections: int,
    duration_s: float,
    warmup_s: float,
    key: str = ADMIN_KEY,
) -> dict[str, Any]:
    """Run the generator in a process of its own against 127.0.0.1:`port`; its summary."""
    python_path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.load", "--port", str(port), "--path", path,
        "--body", body.decode(), "--connections", str(connections),
        "--duration", str(duration_s), "--warmup", str(warmup_s), "--key", key,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": python_path},
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator exited with {process.returncode}")
    summary: dict[str, Any] = json.loads(out)
    return summary


def main() -> None:
    """Entry point of `python -m bench.load`; prints the summary as JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--body", default="{}")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--key", default=ADMIN_KEY, help="the API key every request carries")
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
