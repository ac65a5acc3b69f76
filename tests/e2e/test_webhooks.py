"""Webhooks end to end: real API, worker and agent processes deliver to a real receiver on
127.0.0.1 that the tests script; signatures are checked with code independent of the sender's
(the `standardwebhooks` package, and hmac by hand)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from agentfield_arq.core.settings import from_env
from tests.e2e.conftest import System, deployed
from tests.e2e.receiver import Plan, Receiver

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"an e2e webhook signing key").decode()
RAW_SECRET = "a plain e2e secret"
WEBHOOK_TIMEOUT_S = 5
SETTINGS: dict[str, Any] = {
    "agent_timeout_s": 2,
    "webhook_timeout_s": WEBHOOK_TIMEOUT_S,
    "webhook_retry_schedule_s": "0.3,0.3,0.3",
    "webhook_allowed_hosts": "127.0.0.1",
}


@pytest.fixture(scope="module")
def hooks(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A deployment with a short retry schedule that trusts 127.0.0.1 (and no other private
    address), with the default worker poll delay so that latencies are the default ones."""
    with deployed(e2e_redis, tmp_path_factory.mktemp("logs"), **SETTINGS) as deployment:
        yield deployment


def _submit(
    system: System,
    url: str,
    target: str = "e2e.echo",
    secret: str = SECRET,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    webhook = {"url": url, "secret": secret, "headers": headers or {}}
    return system.submit(target, {"input": body or {}, "webhook": webhook})


def _webhook_state(system: System, execution_id: str, state: str) -> dict[str, Any]:
    def reached() -> dict[str, Any]:
        doc = system.doc(execution_id)
        return doc if doc.get("webhook_status") == state else {}

    return system.until(reached, f"{execution_id}'s webhook to be {state}", 30)


def _agentfield_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_a_receiver_failing_twice_gets_the_third_attempt_signed_both_ways_with_one_id(
    hooks: System, receiver: Receiver
) -> None:
    url = receiver.plan("/flaky", Plan(statuses=[503, 500]))
    execution_id = _submit(hooks, url, body={"quarter": "Q3"})
    got = receiver.wait("/flaky", 3)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    for request in got:
        assert Webhook(SECRET).verify(request.body, request.headers)
        assert request.headers["x-agentfield-signature"] == _agentfield_signature(
            SECRET, request.body
        )
        assert request.headers["content-type"] == "application/json"
    body = got[-1].json()
    assert body["event"] == "execution.completed"
    assert (body["execution_id"], body["status"], body["target"]) == (
        execution_id, "succeeded", "e2e.echo")  # fmt: skip
    assert body["workflow_id"] == body["run_id"]
    assert body["result"]["input"] == {"quarter": "Q3"}
    doc = _webhook_state(hooks, execution_id, "delivered")
    assert body["timestamp"] == doc["completed_at"]
    assert [(e["status"], e.get("http_status")) for e in doc["webhook_events"]] == [
        ("failed", 503), ("failed", 500), ("delivered", 200)]  # fmt: skip


def test_a_plain_secret_signs_with_its_own_bytes(hooks: System, receiver: Receiver) -> None:
    url = receiver.plan("/plain")
    _submit(hooks, url, secret=RAW_SECRET)
    request = receiver.wait("/plain")[0]
    assert Webhook(RAW_SECRET.encode()).verify(request.body, request.headers)
    assert request.headers["x-agentfield-signature"] == _agentfield_signature(
        RAW_SECRET, request.body
    )


def test_nothing_is_sent_while_a_slow_execution_runs(hooks: System, receiver: Receiver) -> None:
    url = receiver.plan("/slow")
    execution_id = _submit(hooks, url, target="e2e.accept", body={"delay": 1.5})
    doc = hooks.wait(execution_id)
    # Whenever it came, the first request is stamped by the receiver on arrival: a webhook
    # sent during the 1.5 s run would arrive before the execution was completed.
    request = receiver.wait("/slow")[0]
    assert request.at >= _epoch(doc["completed_at"])
    assert request.json()["result"] == {"delay": 1.5}
    assert len(receiver.requests("/slow")) == 1


def test_a_failed_execution_sends_execution_failed_with_its_error(
    hooks: System, receiver: Receiver
) -> None:
    url = receiver.plan("/failed")
    execution_id = _submit(hooks, url, target="e2e.reject")
    body = receiver.wait("/failed")[0].json()
    assert (body["event"], body["status"], body["execution_id"]) == (
        "execution.failed", "failed", execution_id)  # fmt: skip
    assert "422" in body["error_message"]
    assert "result" not in body


def test_caller_headers_are_sent_beside_the_signature_headers(
    hooks: System, receiver: Receiver
) -> None:
    url = receiver.plan("/headers")
    _submit(hooks, url, headers={"Authorization": "Bearer abc"})
    request = receiver.wait("/headers")[0]
    assert request.headers["authorization"] == "Bearer abc"
    assert Webhook(SECRET).verify(request.body, request.headers)
    assert request.headers["x-agentfield-signature"] == _agentfield_signature(SECRET, request.body)


def test_caller_headers_that_would_forge_a_signature_are_refused_at_submit(
    hooks: System,
) -> None:
    for forged in ({"webhook-signature": "v1,Zm9yZ2Vk"}, {"X-AgentField-Signature": "sha256=00"}):
        answer = hooks.http.post(
            "/api/v1/execute/async/e2e.echo",
            json={"input": {}, "webhook": {"url": "http://127.0.0.1:9/x", "headers": forged}},
        )
        assert answer.status_code == 202
        assert answer.json()["webhook_registered"] is False
        assert "cannot be replaced" in answer.json()["webhook_error"]


def test_retry_after_is_honoured(hooks: System, receiver: Receiver) -> None:
    url = receiver.plan("/busy", Plan(statuses=[429], retry_after="2"))
    _submit(hooks, url)
    first, second = receiver.wait("/busy", 2)
    assert second.at - first.at >= 1.9


def test_410_stops_the_delivery_at_once(hooks: System, receiver: Receiver) -> None:
    url = receiver.plan("/gone", Plan(then=410))
    execution_id = _submit(hooks, url)
    doc = _webhook_state(hooks, execution_id, "failed")
    assert len(receiver.requests("/gone")) == 1
    assert doc["webhook_events"][0]["http_status"] == 410
    dead = hooks.http.get("/api/v1/webhooks/dead", params={"limit": 500}).json()
    assert execution_id in {d["execution_id"] for d in dead["deliveries"]}


def test_a_dead_delivery_is_listed_and_a_retry_delivers_it_with_the_same_webhook_id(
    hooks: System, receiver: Receiver
) -> None:
    url = receiver.plan("/down", Plan(then=500))
    execution_id = _submit(hooks, url)
    doc = _webhook_state(hooks, execution_id, "failed")
    assert len(doc["webhook_events"]) == 4
    dead = hooks.http.get("/api/v1/webhooks/dead", params={"limit": 500}).json()
    entry = next(d for d in dead["deliveries"] if d["execution_id"] == execution_id)
    assert (entry["attempts"], entry["last_http_status"], entry["url"]) == (4, 500, url)
    receiver.plan("/down", Plan(statuses=[500] * 4))
    answer = hooks.http.post(f"/api/v1/executions/{execution_id}/webhook/retry")
    assert answer.status_code == 202
    assert answer.json()["webhook_status"] == "pending"
    got = receiver.wait("/down", 5)
    assert {r.headers["webhook-id"] for r in got} == {answer.json()["webhook_id"]}
    assert len(_webhook_state(hooks, execution_id, "delivered")["webhook_events"]) == 5
    dead = hooks.http.get("/api/v1/webhooks/dead", params={"limit": 500}).json()
    assert execution_id not in {d["execution_id"] for d in dead["deliveries"]}


def test_the_dead_list_pages_with_a_cursor(hooks: System, receiver: Receiver) -> None:
    url = receiver.plan("/paged", Plan(then=410))
    ids = {_submit(hooks, url) for _ in range(3)}
    for execution_id in ids:
        _webhook_state(hooks, execution_id, "failed")
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = hooks.http.get("/api/v1/webhooks/dead", params=params).json()
        seen += [d["execution_id"] for d in page["deliveries"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))


def test_retry_of_a_running_or_webhook_less_execution_is_refused(hooks: System) -> None:
    running = hooks.submit("e2e.late", {"input": {}, "webhook": {"url": "http://127.0.0.1:9/"}})
    answer = hooks.http.post(f"/api/v1/executions/{running}/webhook/retry")
    assert (answer.status_code, answer.json()["code"]) == (409, "execution_not_terminal")
    plain = hooks.submit("e2e.echo")
    hooks.wait(plain)
    answer = hooks.http.post(f"/api/v1/executions/{plain}/webhook/retry")
    assert (answer.status_code, answer.json()["code"]) == (404, "webhook_not_found")
    answer = hooks.http.post("/api/v1/executions/exec_nope/webhook/retry")
    assert (answer.status_code, answer.json()["code"]) == (404, "execution_not_found")


def test_private_destinations_are_refused_without_being_contacted(hooks: System) -> None:
    outsider = Receiver("127.0.0.2")  # loopback too, but not on the allow-list
    try:
        for url, why in ((outsider.plan("/x"), "loopback"),
                         ("http://169.254.169.254/latest/meta-data", "link-local")):  # fmt: skip
            execution_id = _submit(hooks, url)
            doc = _webhook_state(hooks, execution_id, "failed")
            assert len(doc["webhook_events"]) == 1
            assert why in doc["webhook_events"][0]["error_message"]
        assert outsider.requests("/x") == []
    finally:
        outsider.close()


def test_the_secret_is_never_answered_nor_logged(hooks: System, receiver: Receiver) -> None:
    url = receiver.plan("/secret", Plan(then=410))
    execution_id = _submit(hooks, url)
    _webhook_state(hooks, execution_id, "failed")
    answers = [
        hooks.http.get(f"/api/v1/executions/{execution_id}").text,
        hooks.http.post(
            "/api/v1/executions/batch-status", json={"execution_ids": [execution_id]}
        ).text,
        hooks.http.get("/api/v1/webhooks/dead", params={"limit": 500}).text,
        hooks.http.post(f"/api/v1/executions/{execution_id}/webhook/retry").text,
    ]
    for text in answers:
        assert SECRET not in text
    for log in Path(hooks.logs).glob("*.log"):
        assert SECRET not in log.read_text(errors="replace"), log
        assert RAW_SECRET not in log.read_text(errors="replace"), log


def test_delivery_latency_from_terminal_state_to_the_receiver(
    hooks: System, receiver: Receiver
) -> None:
    url = receiver.plan("/latency")
    latencies = []
    for n in range(1, 51):
        _submit(hooks, url)
        request = receiver.wait("/latency", n)[-1]
        latencies.append(request.at - _epoch(request.json()["timestamp"]))
    median = statistics.median(latencies)
    p90 = statistics.quantiles(latencies, n=10)[-1]
    print(f"\nwebhook latency, terminal state -> receiver, 50 executions: "
          f"median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms")  # fmt: skip
    assert median < 2.0


def test_a_worker_killed_mid_delivery_does_not_lose_the_webhook(
    hooks: System, receiver: Receiver
) -> None:
    url = receiver.plan("/crash", Plan(hang_first=True))
    execution_id = _submit(hooks, url)
    receiver.wait("/crash", 1)
    hooks.kill("worker")
    killed_at = time.monotonic()
    hooks.start_worker("rescuer")
    bound = from_env({}, **SETTINGS).recovery_bound_s
    first, second = receiver.wait("/crash", 2, timeout_s=bound + 10)
    assert time.monotonic() - killed_at <= bound + 5
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    events = _webhook_state(hooks, execution_id, "delivered")["webhook_events"]
    assert [e["status"] for e in events] == ["failed", "delivered"]
    assert "stopped before it finished" in events[0]["error_message"]
