"""A fleet on one Redis: two API processes and three workers under mixed load (async and sync
executions on either replica, agents answering inline and by callback, webhooks, cancels).

Every execution ends once (one terminal entry on the lifecycle stream), every sync request
is answered by whichever replica it was sent to, no execution is run twice (the test agent
counts its calls per execution), and every webhook arrives once."""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.status import TERMINAL_STATUSES
from tests.e2e.conftest import System, deployed
from tests.e2e.receiver import Receiver
from tests.keys import ADMIN_KEY, bearer

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"the fleet's webhook key").decode()
WORKERS = 3
# Per kind of request: how many, spread over both replicas.
ASYNC_INLINE = 40
ASYNC_CALLBACK = 30
SYNC_INLINE = 12
SYNC_CALLBACK = 12
CANCELLED = 10
THREADS = 16
SYNC_TIMEOUT_S = 20


@dataclass(frozen=True)
class Sent:
    """One execution the load sent: its id, its kind, the replica that took it."""

    execution_id: str
    kind: str
    replica: str
    webhook: bool


@pytest.fixture(scope="module")
def fleet(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The API, a second replica (its URL in `env["REPLICA_URL"]`), three workers and the
    test agent, which sends its callbacks to the first replica."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        workers=WORKERS,
        agent_timeout_s=30,
        sync_timeout_s=SYNC_TIMEOUT_S,
        webhook_allowed_hosts="127.0.0.1",
        webhook_retry_schedule_s="0.2,0.2,0.2",
        worker_poll_delay_s=0.05,
    ) as deployment:
        deployment.env["REPLICA_URL"] = deployment.start_replica("api-b")
        yield deployment


def _load(fleet: System, receiver: Receiver) -> tuple[list[Sent], list[dict[str, Any]]]:
    """Send every kind of request at once from THREADS threads; returns what was sent and the
    answers of the sync requests."""
    replicas = itertools.cycle([fleet.api_url, fleet.env["REPLICA_URL"]])
    hook = {"url": receiver.plan("/fleet"), "secret": SECRET}
    plans: list[tuple[str, str, dict[str, Any], bool]] = []
    for n in range(ASYNC_INLINE):
        plans.append(("async", "e2e.echo", {"n": n}, n % 2 == 0))
    for n in range(ASYNC_CALLBACK):
        plans.append(("async", "e2e.accept", {"delay": 0.05 * (n % 5)}, n % 3 == 0))
    for n in range(SYNC_INLINE):
        plans.append(("sync", "e2e.echo", {"n": n}, False))
    for n in range(SYNC_CALLBACK):
        plans.append(("sync", "e2e.accept", {"delay": 0.1}, n % 2 == 0))
    for _ in range(CANCELLED):
        plans.append(("cancel", "e2e.slow", {"s": 60}, True))
    jobs = [(kind, target, body, webhook, next(replicas)) for kind, target, body, webhook in plans]
    http = httpx.Client(timeout=SYNC_TIMEOUT_S + 10, headers=bearer(ADMIN_KEY))

    def send(job: tuple[str, str, dict[str, Any], bool, str]) -> tuple[Sent, dict[str, Any]]:
        kind, target, body, webhook, replica = job
        request: dict[str, Any] = {"input": body, **({"webhook": hook} if webhook else {})}
        route = "execute" if kind == "sync" else "execute/async"
        answer = http.post(f"{replica}/api/v1/{route}/{target}", json=request)
        assert answer.status_code == (200 if kind == "sync" else 202), answer.text
        doc: dict[str, Any] = answer.json()
        return Sent(doc["execution_id"], f"{kind}:{target}", replica, webhook), doc

    with http, ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(send, jobs))
    sync = [doc for sent, doc in results if sent.kind.startswith("sync:")]
    return [sent for sent, _ in results], sync


def _cancel_all(fleet: System, sent: list[Sent]) -> None:
    """Cancel every `cancel` execution through the replica that did not take it, once its
    one agent call is in flight (so that the cancel meets a running execution)."""
    for item in sent:
        if item.kind.startswith("cancel"):
            fleet.agent_calls(item.execution_id, in_flight=1)
            other = fleet.env["REPLICA_URL"] if item.replica == fleet.api_url else fleet.api_url
            answer = httpx.post(
                f"{other}/api/v1/executions/{item.execution_id}/cancel",
                headers=bearer(ADMIN_KEY),
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "cancelled"


def _terminal_entries(fleet: System) -> Counter[str]:
    """How many terminal entries the lifecycle stream holds for each execution."""
    with redis.Redis.from_url(fleet.redis_url, decode_responses=True) as client:
        entries: Any = client.xrange(Keys(fleet.prefix).events)
    return Counter(
        fields["execution_id"] for _, fields in entries if fields["status"] in TERMINAL_STATUSES
    )


def _all_terminal(fleet: System, ids: list[str]) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        answer = fleet.http.post("/api/v1/executions/batch-status", json={"execution_ids": ids})
        docs: dict[str, Any] = answer.json()
        return docs if all(d["status"] in TERMINAL_STATUSES for d in docs.values()) else {}

    return read


def test_a_fleet_ends_every_execution_once_under_mixed_load(
    fleet: System, receiver: Receiver
) -> None:
    sent, sync_answers = _load(fleet, receiver)
    _cancel_all(fleet, sent)
    ids = [item.execution_id for item in sent]
    docs = fleet.until(_all_terminal(fleet, ids), "every execution to end", 60)

    expected = {i.execution_id: "cancelled" if "cancel" in i.kind else "succeeded" for i in sent}
    assert {eid: doc["status"] for eid, doc in docs.items()} == expected
    assert len(sync_answers) == SYNC_INLINE + SYNC_CALLBACK
    assert all(doc["status"] == "succeeded" for doc in sync_answers)
    assert {i.replica for i in sent if i.kind.startswith("sync")} == {
        fleet.api_url,
        fleet.env["REPLICA_URL"],
    }
    assert set(_terminal_entries(fleet).values()) == {1}
    assert set(_terminal_entries(fleet)) >= set(ids)
    for eid in ids:
        assert fleet.agent_calls(eid)["calls"] == 1, eid
    hooked = {i.execution_id for i in sent if i.webhook}
    received = receiver.wait("/fleet", len(hooked), 30)
    assert Counter(r.json()["execution_id"] for r in received) == Counter(hooked)
