"""Idempotency keys, retries and expired ids, over the real app and the session's Redis."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from agentfield_arq.core.credentials import Role
from agentfield_arq.core.keys import EXPIRED_FOR_S
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import new_id, now_ms
from tests.keys import bearer, issue

pytestmark = pytest.mark.integration
BODY = {"input": {"quarter": "Q3"}}


async def _post(
    api: httpx.AsyncClient,
    key: str | None,
    body: object = BODY,
    path: str = "/api/v1/execute/async/e2e.echo",
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.post(path, json=body, headers=headers)


async def _cancel(api: httpx.AsyncClient, execution_id: str) -> None:
    assert (await api.post(f"/api/v1/executions/{execution_id}/cancel")).status_code == 200


async def test_the_same_key_and_body_answers_the_first_execution_marked_replayed(
    api: httpx.AsyncClient,
) -> None:
    first = await _post(api, "order-1")
    again = await _post(api, "order-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    listed = (await api.get("/api/v1/executions")).json()["executions"]
    assert [e["execution_id"] for e in listed] == [first.json()["execution_id"]]


async def test_racing_requests_with_one_key_make_one_execution(
    api: httpx.AsyncClient,
) -> None:
    answers = await asyncio.gather(*(_post(api, "race") for _ in range(8)))
    assert {a.json()["execution_id"] for a in answers} == {answers[0].json()["execution_id"]}
    assert sum("Idempotent-Replayed" in a.headers for a in answers) == 7


async def test_the_same_key_with_another_body_or_target_is_422_idempotency_key_reused(
    api: httpx.AsyncClient,
) -> None:
    assert (await _post(api, "order-2")).status_code == 202
    for answer in (
        await _post(api, "order-2", {"input": {"quarter": "Q4"}}),
        await _post(api, "order-2", path="/api/v1/execute/async/e2e.add"),
    ):
        assert answer.status_code == 422
        assert answer.json()["code"] == "idempotency_key_reused"
        assert "Idempotency-Key" in answer.json()["error"]


async def test_the_same_input_with_its_keys_in_another_order_is_the_same_request(
    api: httpx.AsyncClient,
) -> None:
    # The input is kept as the bytes sent; the request's digest still reads it as JSON.
    bodies = (b'{"input": {"a": 1, "b": [2, 3]}}', b'{"input":{"b":[2,3],"a":1}}')
    headers = {"Idempotency-Key": "order-3", "Content-Type": "application/json"}
    first, again = [
        await api.post("/api/v1/execute/async/e2e.echo", content=body, headers=headers)
        for body in bodies
    ]
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_without_a_key_each_request_is_a_new_execution(
    api: httpx.AsyncClient,
) -> None:
    first, second = await _post(api, None), await _post(api, None)
    assert first.json()["execution_id"] != second.json()["execution_id"]


async def test_the_sync_route_replays_the_first_executions_end(
    api: httpx.AsyncClient,
) -> None:
    # The same request through either route is the same request.
    replay = await _post(api, "sync-1")
    await _cancel(api, replay.json()["execution_id"])
    synced = await _post(api, "sync-1", path="/api/v1/execute/e2e.echo")
    assert synced.status_code == 200
    assert synced.json()["execution_id"] == replay.json()["execution_id"]
    assert synced.json()["status"] == "cancelled"
    assert synced.headers["Idempotent-Replayed"] == "true"


async def test_a_retry_is_a_new_execution_linked_to_the_one_it_retries(
    api: httpx.AsyncClient,
) -> None:
    headers = {"X-Run-ID": "run-retry", "X-Session-ID": "s-1"}
    first = await api.post("/api/v1/execute/async/e2e.echo", json=BODY, headers=headers)
    old = first.json()["execution_id"]
    refused = await api.post(f"/api/v1/executions/{old}/retry")
    assert refused.status_code == 409
    assert refused.json()["code"] == "execution_not_terminal"
    await _cancel(api, old)
    answer = await api.post(f"/api/v1/executions/{old}/retry")
    assert answer.status_code == 202, answer.text
    new = answer.json()
    assert new["execution_id"] != old
    assert (new["run_id"], new["status"], new["target"]) == ("run-retry", "queued", "e2e.echo")
    doc = (await api.get(f"/api/v1/executions/{new['execution_id']}")).json()
    assert doc["retry_of"] == old
    assert (await api.get(f"/api/v1/executions/{old}")).json()["status"] == "cancelled"
    tree = (await api.get("/api/v1/runs/run-retry")).json()
    assert tree["count"] == 2


async def test_retrying_an_unknown_execution_is_404(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.post("/api/v1/executions/exec_nobody/retry")
    assert answer.status_code == 404
    assert answer.json()["code"] == "execution_not_found"


async def test_an_expired_execution_answers_410_and_batch_status_says_expired(
    api: httpx.AsyncClient,
    settings: Settings,
) -> None:
    # An id made two retention periods ago, whose record is gone, as retention leaves it.
    made = now_ms() - 2 * settings.retention_s * 1000
    old, recent = new_id("exec", made), new_id("exec")
    ancient = new_id("exec", made - (10 * settings.retention_s + EXPIRED_FOR_S) * 1000)
    for method, path in (
        ("GET", f"/api/v1/executions/{old}"),
        ("POST", f"/api/v1/executions/{old}/cancel"),
        ("POST", f"/api/v1/executions/{old}/retry"),
        ("GET", f"/api/v1/executions/{old}/events"),
    ):
        answer = await api.request(method, path)
        assert answer.status_code == 410, (method, path)
        assert answer.json()["code"] == "execution_expired"
    for unknown in (recent, ancient, "exec_nothing"):
        assert (await api.get(f"/api/v1/executions/{unknown}")).status_code == 404
    batch = await api.post("/api/v1/executions/batch-status", json={"execution_ids": [old, recent]})
    assert batch.json()[old]["status"] == "expired"
    assert batch.json()[recent]["status"] == "not_found"


async def test_one_idempotency_key_of_two_callers_makes_two_executions(
    api: httpx.AsyncClient,
    settings: Settings,
) -> None:
    other = await issue(settings, Role.CALLER)
    mine = await _post(api, "shared-key")
    theirs = await api.post(
        "/api/v1/execute/async/e2e.echo",
        json=BODY,
        headers={"Idempotency-Key": "shared-key", **bearer(other)},
    )
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["execution_id"] != mine.json()["execution_id"]
    assert "Idempotent-Replayed" not in theirs.headers
