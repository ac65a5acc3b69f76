"""Nodes spread over two Redis deployments (core/routing.py): the home Redis and shard `1`,
each a valkey of its own, one API reading the routes, one worker per Redis, and the test
agent registered as node `near` (home) and node `far` (routed to shard 1).

Each node registers on its own Redis; an execution is stored, queued and run on its node's
Redis (its id names it); every read route finds executions on either; a callback proven by
the agent key (whose node ownership lives home) settles an execution on the shard."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agentfield_arq.core.credentials import Role
from agentfield_arq.core.keys import Keys
from agentfield_arq.ops.embedded import EmbeddedRedis
from tests.e2e.agent_app import registration
from tests.e2e.conftest import System
from tests.e2e.receiver import Plan, Receiver
from tests.e2e.waits import notify_keyspace_events, on_writes, terminal
from tests.keys import ADMIN_KEY, bearer

pytestmark = pytest.mark.e2e

NEAR, FAR = "near", "far"


class TwoRedis:
    """The deployment, and the URL of shard 1's Redis for the test's own reads."""

    def __init__(self, system: System, shard_url: str) -> None:
        self.system = system
        self.shard_url = shard_url
        self.keys = Keys(system.prefix)

    def redis_of(self, code: str) -> redis.Redis:
        """A client of home (`0`) or of shard `1`."""
        return redis.Redis.from_url(self.system.redis_url if code == "0" else self.shard_url)

    def where(self, key: str) -> set[str]:
        """The codes of the Redis that hold `key`."""
        held = set()
        for code in ("0", "1"):
            with contextlib.closing(self.redis_of(code)) as client:
                if client.exists(key):
                    held.add(code)
        return held

    def wait(self, execution_id: str, code: str) -> dict[str, Any]:
        """The execution's document (read through the API) once its terminal entry is on the
        lifecycle stream of the Redis that holds it."""
        url = self.system.redis_url if code == "0" else self.shard_url
        return terminal(
            url, self.system.prefix, execution_id, lambda: self.system.doc(execution_id), 20.0
        )


@pytest.fixture(scope="module")
def shard_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second valkey, shard 1, started for this module only."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("shard-1")), appendonly=False)
    server.start()
    notify_keyspace_events(server.url, "KA")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def two(
    e2e_redis: str, shard_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoRedis]:
    system = System(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        redis_shards=f"1={shard_redis}",
        redis_routes=f"{FAR}=1",
        agent_timeout_s=5,
        sync_timeout_s=10,
        webhook_allowed_hosts="127.0.0.1",
        worker_poll_delay_s=0.05,
    )
    try:
        system.start_api()
        system.start_worker("worker-home")
        system.start_worker("worker-1", worker_shard="1")
        # One agent process serves both nodes, with one agent key owning both (stored home).
        key = system.issue_key(Role.AGENT, [NEAR, FAR])
        system.agent_keys.update({NEAR: key, FAR: key})
        system.start_agent(NEAR)
        far = system.http.post("/api/v1/nodes/register", json=registration(FAR, system.agent_url))
        assert far.status_code == 201, far.text
        yield TwoRedis(system, shard_redis)
    finally:
        system.stop()


def test_each_node_registers_on_its_own_redis(two: TwoRedis) -> None:
    assert two.where(two.keys.node(NEAR)) == {"0"}
    assert two.where(two.keys.node(FAR)) == {"1"}
    beat = two.system.http.post(f"/api/v1/nodes/{FAR}/heartbeat", json={})
    assert beat.status_code == 200, beat.text


def test_an_execution_is_stored_and_run_on_its_nodes_redis_and_its_id_names_it(
    two: TwoRedis,
) -> None:
    near = two.system.submit(f"{NEAR}.echo", {"input": {"n": 1}})
    far = two.system.submit(f"{FAR}.echo", {"input": {"n": 2}})
    assert far.endswith("1")
    assert two.wait(near, "0")["result"]["input"] == {"n": 1}
    assert two.wait(far, "1")["result"]["input"] == {"n": 2}
    assert two.where(two.keys.execution(near)) == {"0"}
    assert two.where(two.keys.execution(far)) == {"1"}


def test_batch_status_and_the_list_find_executions_on_either_redis(two: TwoRedis) -> None:
    near = two.system.submit(f"{NEAR}.echo")
    far = two.system.submit(f"{FAR}.echo")
    two.wait(near, "0")
    two.wait(far, "1")
    unknown = "exec_" + "0" * 25 + "1"
    answer = two.system.http.post(
        "/api/v1/executions/batch-status", json={"execution_ids": [far, near, unknown]}
    )
    assert answer.status_code == 200
    statuses = {i: doc["status"] for i, doc in answer.json().items()}
    assert statuses == {far: "succeeded", near: "succeeded", unknown: "not_found"}
    listed = two.system.http.get("/api/v1/executions", params={"limit": 200}).json()
    ids = [doc["execution_id"] for doc in listed["executions"]]
    assert {near, far} <= set(ids)
    assert ids == sorted(ids, reverse=True)
    first = two.system.http.get("/api/v1/executions", params={"limit": 1}).json()
    second = two.system.http.get(
        "/api/v1/executions", params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert [d["execution_id"] for d in first["executions"] + second["executions"]] == ids[:2]


def test_a_sync_execution_on_the_shard_is_answered_when_it_ends(two: TwoRedis) -> None:
    answer = two.system.http.post(f"/api/v1/execute/{FAR}.echo", json={"input": {"sync": 1}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "succeeded"
    assert answer.json()["execution_id"].endswith("1")


def test_an_agents_callback_settles_an_execution_on_the_shard(two: TwoRedis) -> None:
    far = two.system.submit(f"{FAR}.accept", {"input": {"delay": 0.05}})
    doc = two.wait(far, "1")
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"delay": 0.05}


def _handed_over(two: TwoRedis, execution_id: str, code: str) -> None:
    """Once the worker of Redis `code` has called the agent, which answered 202."""
    url = two.system.redis_url if code == "0" else two.shard_url
    with contextlib.closing(two.redis_of(code)) as client:

        def handed_over() -> bool:
            phase: bytes | None = client.hget(two.keys.execution(execution_id), "phase")  # type: ignore[assignment]  # redis-py's sync stubs
            return phase == b"awaiting_callback"

        on_writes(url, two.system.prefix, handed_over, f"{execution_id} handed over", 20.0)


def test_a_cancel_ends_an_execution_on_the_shard(two: TwoRedis) -> None:
    far = two.system.submit(f"{FAR}.late")
    _handed_over(two, far, "1")
    answer = two.system.http.post(f"/api/v1/executions/{far}/cancel", json={"reason": "enough"})
    assert answer.status_code == 200, answer.text
    assert two.wait(far, "1")["status"] == "cancelled"


def test_one_executions_events_come_from_the_redis_that_holds_it(two: TwoRedis) -> None:
    far = two.system.submit(f"{FAR}.late")
    url = f"{two.system.api_url}/api/v1/executions/{far}/events"
    names: list[str] = []
    with httpx.stream("GET", url, headers=bearer(ADMIN_KEY), timeout=20) as events:
        for line in events.iter_lines():
            if not line.startswith("event: "):
                continue
            names.append(line.removeprefix("event: "))
            if names == ["state"]:
                report = {"status": "succeeded", "result": {"from": "test"}}
                settled = two.system.http.post(f"/api/v1/executions/{far}/status", json=report)
                assert settled.status_code == 200, settled.text
    assert names[0] == "state"
    assert names[-1] == "succeeded"


def test_the_node_list_shows_the_nodes_of_both_redis(two: TwoRedis) -> None:
    listing = two.system.http.get("/api/v1/nodes").json()
    assert {NEAR, FAR} <= {n["id"] for n in listing["nodes"]}
    assert two.system.http.get(f"/api/v1/nodes/{FAR}").json()["status"] == "active"
    assert two.system.http.get("/api/v1/health").status_code == 200


def test_readiness_adds_up_both_redis_and_metrics_label_each(two: TwoRedis) -> None:
    two.wait(two.system.submit(f"{FAR}.echo"), "1")
    ready = two.system.http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["workers_alive"] == 2
    assert ready.json()["nodes_active"] == 2
    metrics = two.system.http.get("/metrics").text
    far = 'agentfield_arq_executions_ended_total{redis="1",status="succeeded",target="far.echo"}'
    assert far in metrics
    assert 'agentfield_arq_workers_alive{redis="0"} 1.0' in metrics


def _events(lines: Iterator[str], count: int) -> list[tuple[str, str, str]]:
    """The next `count` events of a text/event-stream: (id, name, execution id) each."""
    found: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "" and "event" in fields:
            data = json.loads(fields["data"])
            found.append((fields.get("id", ""), fields["event"], data["execution_id"]))
            if len(found) == count:
                return found
        if line == "":
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError(f"the stream ended after {found}")


def test_the_stream_of_all_executions_carries_both_redis_and_resumes_each(two: TwoRedis) -> None:
    url = f"{two.system.api_url}/api/v1/events"
    run = {"X-Run-ID": "run_both"}
    query = {"run_id": "run_both"}
    with httpx.stream("GET", url, params=query, headers=bearer(ADMIN_KEY), timeout=20) as live:
        lines = live.iter_lines()
        assert next(lines) == ": heartbeat"  # subscribed to both streams
        near = two.system.submit(f"{NEAR}.echo", headers=run)
        far = two.system.submit(f"{FAR}.echo", headers=run)
        seen = _events(lines, 6)  # queued, running, succeeded of each
    assert Counter((name, i) for _, name, i in seen) == Counter(
        (name, i) for i in (near, far) for name in ("queued", "running", "succeeded")
    )
    assert all(re.fullmatch(r"0:\d+-\d+,1:\d+-\d+", event_id) for event_id, _, _ in seen)
    resume = {**bearer(ADMIN_KEY), "Last-Event-ID": seen[0][0]}
    with httpx.stream("GET", url, params=query, headers=resume, timeout=20) as again:
        replayed = _events(again.iter_lines(), 5)
    assert Counter(event[1:] for event in replayed) == Counter(event[1:] for event in seen[1:])


def test_a_run_over_both_redis_is_one_tree_with_the_child_under_its_parent(two: TwoRedis) -> None:
    parent = two.system.submit(f"{NEAR}.echo", headers={"X-Run-ID": "run_tree"})
    child = two.system.submit(
        f"{FAR}.echo", headers={"X-Run-ID": "run_tree", "X-Parent-Execution-ID": parent}
    )
    two.wait(parent, "0")
    two.wait(child, "1")
    run = two.system.http.get("/api/v1/runs/run_tree").json()
    assert run["count"] == 2
    assert run["status"] == "succeeded"
    assert [root["execution_id"] for root in run["roots"]] == [parent]
    assert [c["execution_id"] for c in run["roots"][0]["children"]] == [child]


def test_a_cancel_reaches_a_child_on_the_other_redis(two: TwoRedis) -> None:
    parent = two.system.submit(f"{NEAR}.late", headers={"X-Run-ID": "run_cascade"})
    _handed_over(two, parent, "0")  # started, as a parent whose agent made a child is
    child = two.system.submit(
        f"{FAR}.late", headers={"X-Run-ID": "run_cascade", "X-Parent-Execution-ID": parent}
    )
    answer = two.system.http.post(f"/api/v1/executions/{parent}/cancel")
    assert answer.status_code == 200, answer.text
    doc = two.wait(child, "1")
    assert doc["status"] == "cancelled"
    assert parent in doc["error"]


def _webhook_died(two: TwoRedis, execution_id: str, code: str) -> None:
    url = two.system.redis_url if code == "0" else two.shard_url

    def died() -> bool:
        return two.system.doc(execution_id).get("webhook_status") == "failed"

    on_writes(url, two.system.prefix, died, f"{execution_id}'s webhook to die", 20.0)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver("127.0.0.1")
    yield server
    server.close()


def test_dead_webhooks_of_both_redis_are_listed_and_paged(
    two: TwoRedis, receiver: Receiver
) -> None:
    webhook = {"url": receiver.plan("/gone", Plan(then=410)), "secret": "whsec_c2VjcmV0"}
    ends = {two.system.submit(f"{node}.echo", {"input": {}, "webhook": webhook}): code
            for node, code in ((NEAR, "0"), (FAR, "1"), (FAR, "1"))}  # fmt: skip
    for execution_id, code in ends.items():
        _webhook_died(two, execution_id, code)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = two.system.http.get("/api/v1/webhooks/dead", params=params).json()
        seen += [d["execution_id"] for d in page["deliveries"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert set(ends) <= set(seen)
    assert len(seen) == len(set(seen))
