"""Failover: the API and workers reach Redis through Sentinel (a `redis+sentinel://` URL); the
primary is SIGKILLed under load, a replica is promoted, and the system carries on by itself.

Each test reports what was acknowledged (202s), what of that was lost (unknown after the
failover) and how long the API refused work (from the kill to the first 202 after the last
refusal). Replication is
asynchronous: without AGENTFIELD_ARQ_REDIS_WAIT_REPLICAS an acknowledged write can be lost in
the failover; with it, every acknowledgement waited for a replica (WAIT), so none is.
Run with `-s` to see the figures."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.status import TERMINAL_STATUSES
from tests.e2e.conftest import System, deployed
from tests.e2e.sentinel import SentinelGroup
from tests.e2e.waits import poll
from tests.keys import ADMIN_KEY, bearer

pytestmark = pytest.mark.e2e

SENDERS = 4
WORKERS = 2
READY_TIMEOUT_S = 30.0
BEFORE_KILL = 10
# Requests answered while the replicas lag, each with an input large enough that together they
# overflow the socket buffers between primary and replica: what the primary still held in its
# own output buffer dies with it.
LAGGING = 40
INPUT_BYTES = 250_000
AFTER_RECOVERY = 10
LOAD_LIMIT_S = 25.0
SETTINGS: dict[str, Any] = {
    "agent_timeout_s": 1,
    "sweep_interval_s": 1,
    "worker_poll_delay_s": 0.05,
    "redis_wait_timeout_ms": 200,
}


@dataclass
class Load:
    """Async executions sent from SENDERS threads until stopped: what was acknowledged, and
    when, and the refusals."""

    api_url: str
    body: dict[str, Any]
    acked: list[tuple[float, str]] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def send(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=10, headers=bearer(ADMIN_KEY)) as http:
            while not self.stop.is_set():
                try:
                    answer = http.post("/api/v1/execute/async/e2e.echo", json=self.body)
                except httpx.TransportError:
                    answer = None
                with self.changed:
                    if answer is not None and answer.status_code == 202:
                        self.acked.append((time.monotonic(), answer.json()["execution_id"]))
                    else:
                        self.refused.append(time.monotonic())
                        if answer is not None and answer.status_code != 503:
                            self.unexpected.append(f"{answer.status_code} {answer.text}")
                    self.changed.notify_all()

    def acked_since(self, moment: float) -> int:
        return sum(1 for at, _ in self.acked if at > moment)

    def answered_since(self, moment: float) -> int:
        return self.acked_since(moment) + sum(1 for at in self.refused if at > moment)

    def wait_for(self, count: int, since: float, *, acked: bool = True) -> None:
        def enough() -> bool:
            got = self.acked_since(since) if acked else self.answered_since(since)
            return got >= count

        with self.changed:
            assert self.changed.wait_for(enough, LOAD_LIMIT_S), f"{count} answers since {since}"


@pytest.fixture
def group(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SentinelGroup]:
    replicas: int = getattr(request, "param", 1)
    sentinels = SentinelGroup(tmp_path / "redis", replicas=replicas)
    try:
        sentinels.start()
        yield sentinels
    finally:
        sentinels.stop()


def _fail_over(group: SentinelGroup, system: System) -> dict[str, Any]:
    """Kill the primary under load, its replicas having fallen behind (paused for the last
    LAGGING requests, resumed as the primary dies); returns the figures once the load has
    been acknowledged again and every acknowledged execution is terminal or unknown."""
    _until_workers_lease(system, WORKERS)
    load = Load(system.api_url, {"input": {"padding": "x" * INPUT_BYTES}})
    senders = [threading.Thread(target=load.send) for _ in range(SENDERS)]
    for sender in senders:
        sender.start()
    try:
        load.wait_for(BEFORE_KILL, since=0.0)
        for name in group.replicas:
            group.pause(name)
        load.wait_for(LAGGING, since=time.monotonic(), acked=False)
        killed_at = time.monotonic()
        group.kill("primary")
        for name in group.replicas:
            group.resume(name)
        load.wait_for(AFTER_RECOVERY, since=killed_at)
    finally:
        load.stop.set()
        for sender in senders:
            sender.join()
    assert load.unexpected == []
    promoted = poll(group.promoted, "the sentinels to agree on a new primary", 10)
    system.redis_url = group.server_url(promoted)
    ids = [execution_id for _, execution_id in load.acked]
    docs = system.until(_settled(system, ids), "every acknowledged execution to settle", 60)
    settled_s = time.monotonic() - killed_at
    return {
        "acknowledged": len(ids),
        "lost": sorted(i for i, doc in docs.items() if doc["status"] == "not_found"),
        "statuses": {doc["status"] for doc in docs.values()},
        "refused": len(load.refused),
        "settled_s": settled_s,
        # From the kill to the first acknowledgement after the last refusal.
        "recover_s": min(at for at, _ in load.acked if at > max(load.refused)) - killed_at,
    }


def _until_workers_lease(system: System, count: int) -> None:
    """Wait for `count` live worker leases: a worker still starting when the primary dies
    exits (arq's start-up reads the server's INFO once, before any of our code runs), and the
    test is about the system carrying on, not about a start-up."""
    workers = Keys(system.prefix).workers

    def leased() -> bool:
        with contextlib.closing(redis.Redis.from_url(system.redis_url)) as client:
            live: Any = client.zcount(workers, f"({time.time() * 1000}", "+inf")
        return bool(live >= count)

    system.until(leased, f"{count} workers to take their lease", READY_TIMEOUT_S)


def _settled(system: System, ids: list[str]) -> Any:
    def read() -> dict[str, Any]:
        answer = system.http.post("/api/v1/executions/batch-status", json={"execution_ids": ids})
        if answer.status_code != 200:
            return {}
        docs: dict[str, Any] = answer.json()
        done = (*TERMINAL_STATUSES, "not_found")
        return docs if all(d["status"] in done for d in docs.values()) else {}

    return read


def _report(name: str, figures: dict[str, Any]) -> None:
    print(
        f"\nfailover {name}: acknowledged={figures['acknowledged']} lost={len(figures['lost'])} "
        f"refused={figures['refused']} recover_s={figures['recover_s']:.2f} "
        f"settled_s={figures['settled_s']:.2f}"
    )


def test_the_system_carries_on_after_the_primary_is_killed(
    group: SentinelGroup, tmp_path: Path
) -> None:
    primary = group.server_url("primary")
    logs = tmp_path / "logs"
    logs.mkdir()
    with deployed(primary, logs, workers=WORKERS, connect_url=group.url, **SETTINGS) as s:
        figures = _fail_over(group, s)
        _report("without WAIT", figures)
        assert figures["statuses"] <= {"succeeded", "not_found"}
        after = s.submit("e2e.echo", {"input": {"after": True}})
        assert s.wait(after)["result"]["input"] == {"after": True}


@pytest.mark.parametrize("group", [2], indirect=True)
def test_with_wait_replicas_a_failover_loses_nothing_acknowledged(
    group: SentinelGroup, tmp_path: Path
) -> None:
    # Two replicas: after one is promoted, the other still confirms the writes.
    primary = group.server_url("primary")
    logs = tmp_path / "logs"
    logs.mkdir()
    with deployed(
        primary,
        logs,
        workers=WORKERS,
        connect_url=group.url,
        redis_wait_replicas=1,
        **SETTINGS,
    ) as s:
        figures = _fail_over(group, s)
        _report("with REDIS_WAIT_REPLICAS=1", figures)
        assert figures["lost"] == []
        assert figures["statuses"] == {"succeeded"}
