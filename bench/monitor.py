"""Redis commands per execution, as MONITOR sees them on our own Redis, split by who sends them
(the API or a worker) and whether a client sent them (each one costs a network round trip
unless pipelined) or a Lua script ran them inside one EVALSHA.

A small sample is enough: the counts are exact, not timed. Enqueue is measured over HTTP with
no worker running; the run is measured by parking the queue, starting one worker and
releasing it, so that idle polling before the release is not counted.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import msgspec
import redis

from bench import fill
from bench.enqueue import BODY, OURS_PATH
from bench.harness import Harness
from bench.load import JSON_AUTH
from bench.plan import Plan

STOP_MARK = "bench-monitor-stop"


class Commands(msgspec.Struct, kw_only=True):
    """Per-execution command counts of one phase, by command name."""

    client: dict[str, float]
    script: dict[str, float]

    @property
    def client_total(self) -> float:
        """Commands sent by clients (round trips, before pipelining)."""
        return sum(self.client.values())

    @property
    def script_total(self) -> float:
        """Commands run inside Lua scripts."""
        return sum(self.script.values())


class _Recorder:
    """MONITOR on a thread of its own until stopped."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.ready = threading.Event()

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            while True:
                entry = monitor.next_command()
                name = entry["command"].split(" ", 1)[0].upper()
                if name == "ECHO" and STOP_MARK in entry["command"]:
                    return
                self.counts[(entry["client_type"], name)] += 1

    def __enter__(self) -> _Recorder:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        # MONITOR's stream lags behind the commands: the listener stops at this mark, once it
        # has read everything sent before it (a flag would drop what the stream still held).
        self.client.echo(STOP_MARK)
        self.thread.join(10)
        self.client.close()

    def per(self, executions: int) -> Commands:
        """The counts divided by the number of executions."""
        client: dict[str, float] = {}
        script: dict[str, float] = {}
        for (kind, name), n in self.counts.items():
            if name in ("MONITOR", "PING") or (kind != "lua" and name in ("ZCARD", "ZADD")):
                continue  # the bench's own: this recorder, settle()'s polling, the release
            if name in ("CLIENT", "HELLO"):
                continue  # once per new connection, not per execution
            (script if kind == "lua" else client)[name] = n / executions
        return Commands(client=client, script=script)


async def measure(h: Harness, plan: Plan, agent_url: str) -> dict[str, Commands]:
    """Commands per execution of enqueue (API) and of running it (worker)."""
    count = plan.monitor_sample
    h.flush()
    await h.register_node(agent_url)
    api_port = await h.start_api()
    url = f"http://127.0.0.1:{api_port}{OURS_PATH}"
    try:
        with _Recorder(h.url) as api:
            async with httpx.AsyncClient(headers=JSON_AUTH) as http:
                for _ in range(count):
                    answer = await http.post(url, content=BODY)
                    answer.raise_for_status()
    finally:
        h.stop("api")
    ids = [i.decode() for i in h.redis.zrange(h.keys.queue, 0, -1)]
    await fill.park(h, h.keys.queue, ids)
    workers = await h.start_workers(1)
    try:
        with _Recorder(h.url) as worker:
            await fill.release(h, h.keys.queue, ids)
            await fill.settle(h)
    finally:
        h.stop(*workers)
    return {"enqueue (API)": api.per(count), "run (worker)": worker.per(count)}
