"""Chaos with real processes: a Redis that stalls (SIGSTOP) and a Redis that is killed (SIGKILL)
under load, and the run command's supervisor bringing its embedded valkey back.

Each test starts a Redis of its own (append-only on, as the run command's), never the session's.
Every acknowledged execution must reach exactly one terminal state; the API and the worker must
come back by themselves, without a process restart. The figures (API latency while Redis
stalls, executions created by calls answered 503, time for new work to resume) are printed;
`pytest -s` shows them. CHAOS_STALL_S (default 3) sets how long Redis stalls, and
CHAOS_REDIS_TIMEOUT_S (default 1) the Redis command timeout of the API and the worker, and
CHAOS_SUBMITTERS (default 4) how many callers submit at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from agentfield_arq.core.credentials import Role
from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.status import TERMINAL_STATUSES
from agentfield_arq.ops.embedded import EmbeddedRedis
from agentfield_arq.ops.supervisor import Supervisor
from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import start_node
from tests.e2e.waits import notify_keyspace_events, poll
from tests.keys import bearer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

STALL_S = float(os.environ.get("CHAOS_STALL_S", "3"))
OUTAGE_S = 2.0
COMMAND_TIMEOUT_S = float(os.environ.get("CHAOS_REDIS_TIMEOUT_S", "1"))
CLIENT_TIMEOUT_S = 10.0
SUBMITTERS = int(os.environ.get("CHAOS_SUBMITTERS", "4"))
WARM_UP = 50
SETTLE_S = 60.0
TARGET = "sdk.slow"
BODY = {"input": {"s": 0.05}}


@dataclass
class Answer:
    """One submission as its caller saw it."""

    sent: float
    took_s: float
    status: int | None  # None: the caller gave up (client timeout or no connection)
    execution_id: str | None = None


@dataclass
class Load:
    """Threads submitting executions back to back, and one probing `/health`."""

    api_url: str
    key: str
    answers: list[Answer] = field(default_factory=list)
    health: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    accepted: threading.Condition = field(default_factory=threading.Condition)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._submit, daemon=True) for _ in range(SUBMITTERS)]
        threads.append(threading.Thread(target=self._probe, daemon=True))
        for thread in threads:
            thread.start()
        return threads

    def _submit(self) -> None:
        with httpx.Client(
            base_url=self.api_url, timeout=CLIENT_TIMEOUT_S, headers=bearer(self.key)
        ) as http:
            while not self.stop.is_set():
                answer = _timed(lambda: http.post(f"/api/v1/execute/async/{TARGET}", json=BODY))
                with self.lock:
                    self.answers.append(answer)
                with self.accepted:
                    self.accepted.notify_all()

    def _probe(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=CLIENT_TIMEOUT_S) as http:
            while not self.stop.is_set():
                answer = _timed(lambda: http.get("/api/v1/health"))
                with self.lock:
                    self.health.append(answer)
                self.stop.wait(0.2)  # a probe's period, as a load balancer's

    def wait_accepted_after(self, since: float, timeout_s: float) -> Answer:
        """The first 202 to a submission sent after `since`."""
        with self.accepted:
            found = self.accepted.wait_for(lambda: self._accepted_after(since), timeout_s)
        assert found, f"no submission accepted within {timeout_s}s after the fault ended"
        return found

    def wait_accepted(self, count: int, timeout_s: float) -> None:
        """Until `count` submissions have been accepted: the load is running."""
        with self.accepted:
            found = self.accepted.wait_for(lambda: len(self.ids(202)) >= count, timeout_s)
        assert found, f"fewer than {count} submissions accepted within {timeout_s}s"

    def _accepted_after(self, since: float) -> Answer | None:
        with self.lock:
            return next((a for a in self.answers if a.sent >= since and a.status == 202), None)

    def ids(self, status: int) -> set[str]:
        """The execution ids named by answers of `status`."""
        with self.lock:
            return {a.execution_id for a in self.answers if a.status == status and a.execution_id}

    def between(self, start: float, end: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if start <= a.sent < end]


def _timed(send: object) -> Answer:
    assert callable(send)
    sent = time.monotonic()
    try:
        response = send()
    except httpx.HTTPError:
        return Answer(sent, time.monotonic() - sent, None)
    took = time.monotonic() - sent
    execution_id = response.headers.get("x-execution-id")
    answer = Answer(sent, took, response.status_code, execution_id)
    if response.status_code == 503 and "/health" in str(response.request.url):
        assert response.json()["reason"], response.text
    return answer


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis for this test only (append-only on), which the test may stop and kill."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    notify_keyspace_events(server.url, "KA")
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@contextlib.contextmanager
def loaded_system(server: EmbeddedRedis, logs: Path) -> Iterator[tuple[System, Load]]:
    with deployed(
        server.url,
        logs,
        agent=False,
        redis_command_timeout_s=COMMAND_TIMEOUT_S,
        redis_connect_timeout_s=COMMAND_TIMEOUT_S,
        agent_timeout_s=2,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
        # The load floods one agent that takes its time: with the default 2,000 slots a worker
        # sends it the whole flood at once, and the flood then waits in the agent's reports to
        # a saturated API instead of in Redis, which is what these tests fault.
        worker_concurrency=32,
        # The oracle reads every terminal entry back from the lifecycle stream: none trimmed.
        stream_maxlen=10_000_000,
    ) as system:
        start_node(system, "sdk")
        # A caller's key, looked up in Redis like any request's (the admin key is not).
        load = Load(system.api_url, system.issue_key(Role.CALLER))
        threads = load.run()
        try:
            yield system, load
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(CLIENT_TIMEOUT_S + 5)


def terminal_entries(server: EmbeddedRedis, prefix: str) -> dict[str, list[str]]:
    """Every terminal lifecycle entry, by execution id."""
    seen: dict[str, list[str]] = {}
    with contextlib.closing(redis.Redis.from_url(server.url, decode_responses=True)) as client:
        entries: list[tuple[str, dict[str, str]]] = client.xrange(Keys(prefix).events)  # type: ignore[assignment]
    for _id, fields in entries:
        if fields["status"] in TERMINAL_STATUSES:
            seen.setdefault(fields["execution_id"], []).append(fields["status"])
    return seen


def all_executions(server: EmbeddedRedis, prefix: str) -> set[str]:
    """The id of every execution record under `prefix`."""
    with contextlib.closing(redis.Redis.from_url(server.url, decode_responses=True)) as client:
        keys = client.scan_iter(match=Keys(prefix).execution("*"), count=1000)
        return {key.split(":")[2] for key in keys if key.count(":") == 2}


def settle(system: System, server: EmbeddedRedis, wanted: set[str]) -> dict[str, list[str]]:
    """Terminal entries once every execution of `wanted` has one (or fail at SETTLE_S)."""

    def ended() -> dict[str, list[str]] | None:
        seen = terminal_entries(server, system.prefix)
        return seen if wanted <= seen.keys() else None

    try:
        done = system.until(ended, "every execution to end", SETTLE_S)
    except AssertionError as exc:
        left = wanted - terminal_entries(server, system.prefix).keys()
        with contextlib.closing(redis.Redis.from_url(server.url, decode_responses=True)) as client:
            states = {i: client.hgetall(Keys(system.prefix).execution(i)) for i in sorted(left)}
        raise AssertionError(f"{len(left)} never ended: {states}; logs in {system.logs}") from exc
    assert done is not None
    return done


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_a_stalled_redis_costs_callers_a_bounded_503_and_nothing_acknowledged_is_lost(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    assert own_redis.process is not None
    with loaded_system(own_redis, tmp_path) as (system, load):
        load.wait_accepted(WARM_UP, 30)
        stalled = time.monotonic()
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        load.stop.wait(STALL_S)  # the fault's length, not a wait for an event
        os.kill(own_redis.process.pid, signal.SIGCONT)
        resumed = time.monotonic()
        load.wait_accepted_after(resumed, 30)
        load.stop.set()
        with load.lock:
            health = [h for h in load.health if stalled <= h.sent < resumed - COMMAND_TIMEOUT_S]
        during = [a for a in load.between(stalled, resumed) if a.sent + a.took_s < resumed]
        workers_alive = system.processes["worker"].poll() is None
        api_alive = system.processes["api"].poll() is None
        acknowledged = load.ids(202)
        refused = load.ids(503)
        ended = settle(system, own_redis, acknowledged | (all_executions(own_redis, system.prefix)))
    assert during, "no submission was sent while Redis stalled"
    assert {a.status for a in during} == {503}, "every call answered while Redis stalled is 503"
    assert all(a.status is not None for a in load.answers), "no caller was left to time out"
    assert health
    assert {h.status for h in health} == {503}
    assert workers_alive
    assert api_alive
    assert all(len(ended[i]) == 1 for i in acknowledged)
    created = refused & all_executions(own_redis, system.prefix)
    print(
        f"\nredis SIGSTOP {STALL_S:g}s: {len(during)} calls answered while stalled, "
        f"p99 {p99([a.took_s for a in during]):.2f}s, max {max(a.took_s for a in during):.2f}s; "
        f"{len(refused)} answered 503 with an id, {len(created)} of those created after all; "
        f"{len(acknowledged)} acknowledged, each ended once"
    )


def test_a_killed_redis_restarted_finds_the_api_and_the_worker_reconnected_by_themselves(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    assert own_redis.process is not None
    with loaded_system(own_redis, tmp_path) as (system, load):
        load.wait_accepted(WARM_UP, 30)
        pids = {name: process.pid for name, process in system.processes.items()}
        own_redis.process.kill()
        own_redis.process.wait()
        load.stop.wait(OUTAGE_S)  # the outage's length, not a wait for an event
        assert own_redis.restart(), "the killed Redis did not start again"
        notify_keyspace_events(own_redis.url, "KA")
        back = time.monotonic()
        first = load.wait_accepted_after(back, 30)
        assert first.execution_id is not None
        resumed = system.wait(first.execution_id, 30)
        resumed_s = time.monotonic() - back
        load.stop.set()
        alive = {name: process.poll() is None for name, process in system.processes.items()}
        acknowledged = load.ids(202)
        ended = settle(system, own_redis, acknowledged)
        assert {name: p.pid for name, p in system.processes.items()} == pids
    assert resumed["status"] == "succeeded"
    assert all(alive.values()), alive
    assert all(len(ended[i]) == 1 for i in acknowledged)
    assert all(ended[i] == ["succeeded"] for i in acknowledged), "nothing acknowledged was lost"
    print(
        f"\nredis SIGKILL, back after {OUTAGE_S:g}s: first new execution accepted "
        f"{first.sent + first.took_s - back:.2f}s and succeeded {resumed_s:.2f}s after Redis "
        f"answered again; {len(acknowledged)} acknowledged, each ended once, none lost"
    )


def test_the_run_commands_supervisor_restarts_its_embedded_valkey_on_its_port_with_its_data(
    tmp_path: Path,
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    supervisor = Supervisor([], {}, [server])
    watching = threading.Thread(target=supervisor.supervise, daemon=True)
    watching.start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=1.0)
        with contextlib.closing(client):
            client.set("kept", "yes")
            assert server.process is not None
            killed = server.process.pid
            server.process.kill()

            def answers_again() -> bool:
                with contextlib.suppress(redis.RedisError):
                    return (
                        server.process is not None
                        and server.process.pid != killed
                        and (client.get("kept") == b"yes")
                    )
                return False

            poll(answers_again, "the embedded valkey to be restarted", 20)
    finally:
        supervisor.stopping.set()
        watching.join(10)
        server.stop()
