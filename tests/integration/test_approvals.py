"""Approvals over the API, as AgentField's SDK asks for them (`app.pause`): a running execution
waits with a deadline of its own, then runs on when approved, fails when rejected, and reads
`expired` when its deadline timed it out."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import now_ms, rfc3339
from tests.integration.test_api import _submit

pytestmark = pytest.mark.integration
AGENT = "/api/v1/agents/e2e/executions"
ASK = {
    "approval_request_id": "req_1",
    "approval_request_url": "https://review.example.com/req_1",
    "callback_url": "http://127.0.0.1:9/webhooks/approval",
    "expires_in_hours": 1,
}


async def _waiting(api: httpx.AsyncClient) -> str:
    execution_id = await _submit(api)
    running = await api.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "running"}
    )
    assert running.status_code == 200, running.text
    asked = await api.post(f"{AGENT}/{execution_id}/request-approval", json=ASK)
    assert asked.status_code == 200, asked.text
    return execution_id


async def test_asking_makes_the_execution_wait_with_the_approvals_own_deadline(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    before = now_ms()
    execution_id = await _waiting(api)
    doc = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert doc["status"] == "waiting"
    deadline = await redis_client.zscore(Keys("t").deadlines, execution_id)
    assert deadline is not None
    assert before + 3_600_000 <= deadline <= now_ms() + 3_600_000
    status = (await api.get(f"{AGENT}/{execution_id}/approval-status")).json()
    assert status["status"] == "pending"
    assert status["request_url"] == ASK["approval_request_url"]
    again = await api.post(f"{AGENT}/{execution_id}/request-approval", json=ASK)
    assert again.status_code == 200


async def test_approved_it_runs_on_and_the_agents_callback_then_ends_it(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _waiting(api)
    approved = await api.post(
        f"/api/v1/executions/{execution_id}/approve", json={"feedback": "ok", "response": {"a": 1}}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["response"] == {"a": 1}
    doc = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert doc["status"] == "running"
    status = (await api.get(f"{AGENT}/{execution_id}/approval-status")).json()
    assert status["status"] == "approved"
    assert status["feedback"] == "ok"
    done = await api.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "succeeded", "result": 1}
    )
    assert done.json()["status"] == "succeeded"
    late = await api.post(f"/api/v1/executions/{execution_id}/reject")
    assert late.status_code == 409


async def test_rejected_it_fails_with_the_feedback_in_its_error(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _waiting(api)
    rejected = await api.post(f"/api/v1/executions/{execution_id}/reject", json={"feedback": "no"})
    assert rejected.json()["status"] == "rejected"
    doc = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert doc["status"] == "failed"
    assert doc["error"] == "approval rejected: no"


async def test_an_approval_past_its_deadline_reads_expired_once_swept(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    execution_id = await _waiting(api)
    store = ExecutionStore(redis_client, settings)
    later = now_ms() + 3_700_000
    swept = await store.finish(
        execution_id, "timeout", rfc3339(later), later, error="deadline", only_if_overdue=True
    )
    assert swept.outcome == "ok"
    status = (await api.get(f"{AGENT}/{execution_id}/approval-status")).json()
    assert status["status"] == "expired"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"callback_url": "http://evil.example.com/x"}, 400),
        ({"expires_in_hours": 0}, 400),
        ({"approval_request_id": "a:b"}, 400),
    ],
)
async def test_a_callback_off_the_nodes_base_url_or_a_bad_expiry_is_refused(
    api: httpx.AsyncClient,
    change: dict[str, object],
    status: int,
) -> None:
    execution_id = await _submit(api)
    await api.post(f"/api/v1/executions/{execution_id}/status", json={"status": "running"})
    answer = await api.post(f"{AGENT}/{execution_id}/request-approval", json={**ASK, **change})
    assert answer.status_code == status, answer.text


async def test_a_queued_execution_cannot_wait_and_another_nodes_path_is_404(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api)
    queued = await api.post(f"{AGENT}/{execution_id}/request-approval", json=ASK)
    assert queued.status_code == 409
    other = await api.get(f"/api/v1/agents/other/executions/{execution_id}/approval-status")
    assert other.status_code == 404
    none = await api.get(f"{AGENT}/{execution_id}/approval-status")
    assert none.json()["code"] == "approval_not_found"


async def test_the_awaiter_status_flips_running_and_waiting(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api)
    await api.post(f"/api/v1/executions/{execution_id}/status", json={"status": "running"})
    waiting = await api.post(f"{AGENT}/{execution_id}/awaiter-status", json={"status": "waiting"})
    assert waiting.json()["status"] == "waiting"
    running = await api.post(f"{AGENT}/{execution_id}/awaiter-status", json={"status": "running"})
    assert running.json()["status"] == "running"
    bad = await api.post(f"{AGENT}/{execution_id}/awaiter-status", json={"status": "done"})
    assert bad.status_code == 400
