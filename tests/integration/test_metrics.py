"""/metrics, /ready and health's detail over the real app and the session's Redis: scraped
and read back with prometheus_client's own text parser."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from agentfield_arq.core.lease import WorkerLease
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339

pytestmark = pytest.mark.integration


async def _submit(api: httpx.AsyncClient) -> str:
    answer = await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


async def _scrape(api: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await api.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


async def test_metrics_parse_and_count_what_happened(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    store = ExecutionStore(redis_client, settings)
    kept, cancelled, ran = await _submit(api), await _submit(api), await _submit(api)
    await api.post(f"/api/v1/executions/{cancelled}/cancel")
    now = now_ms()
    await store.claim(ran, rfc3339(now), now)
    await store.finish(ran, "succeeded", rfc3339(now), now, result=b"1")
    await store.count_call("accepted")
    m = await _scrape(api)
    assert m["agentfield_arq_executions", (("status", "queued"),)] == 1
    assert m["agentfield_arq_executions", (("status", "cancelled"),)] == 1
    assert m["agentfield_arq_executions", (("status", "succeeded"),)] == 1
    assert m["agentfield_arq_executions_created_total", (("target", "e2e.echo"),)] == 3
    ended = (("status", "succeeded"), ("target", "e2e.echo"))
    assert m["agentfield_arq_executions_ended_total", ended] == 1
    # No worker runs here: every run job stays queued (a cancelled one until a worker skips it).
    assert m["agentfield_arq_queue_depth", (("kind", "execution"),)] == 3
    assert m["agentfield_arq_queue_depth", (("kind", "webhook_delivery"),)] == 0
    assert m["agentfield_arq_enqueue_to_start_seconds_count", ()] == 1
    assert m["agentfield_arq_enqueue_to_start_seconds_bucket", (("le", "+Inf"),)] == 1
    assert m["agentfield_arq_start_to_end_seconds_count", ()] == 1
    assert m["agentfield_arq_agent_calls_total", (("outcome", "accepted"),)] == 1
    assert m["agentfield_arq_nodes", (("status", "active"),)] == 1
    assert m["agentfield_arq_workers_alive", ()] == 0
    assert m["agentfield_arq_redis_rtt_seconds", ()] > 0
    assert kept


async def test_a_settle_that_carries_the_agent_calls_outcome_counts_it_even_when_stale(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    store = ExecutionStore(redis_client, settings)
    ran = await _submit(api)
    now = now_ms()
    await store.claim(ran, rfc3339(now), now)
    done = await store.finish(ran, "succeeded", rfc3339(now), now, result=b"1", call_outcome="ok")
    stale = await store.finish(
        ran, "succeeded", rfc3339(now), now, result=b"2", attempt="7", call_outcome="ok"
    )
    assert (done.outcome, stale.outcome) == (Outcome.OK, Outcome.CONFLICT)
    m = await _scrape(api)
    assert m["agentfield_arq_agent_calls_total", (("outcome", "ok"),)] == 2


async def test_ready_needs_a_worker_alive_and_reports_the_counts(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    await _submit(api)
    refused = await api.get("/ready")
    assert refused.status_code == 503
    assert refused.json()["code"] == "not_ready"
    lease = WorkerLease(redis_client, settings)
    await lease.beat()  # what a live worker does
    answer = await api.get("/ready")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["workers_alive"], body["nodes_active"]) == ("ready", 1, 1)
    assert body["queue"]["executions"] == 1
    await lease.release()  # what a worker does when it stops
    assert (await api.get("/ready")).status_code == 503


async def test_health_stays_liveness_and_adds_the_counts_on_request(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.get("/health")).json() == {"status": "ok", "redis": "up"}
    detail = (await api.get("/api/v1/health?detail=1")).json()
    assert detail["queue"] == {
        "executions": 0,
        "webhook_deliveries": 0,
        "webhook_notices": 0,
        "oldest_queued_s": 0.0,
    }
    assert detail["workers_alive"] == 0
    bad = await api.get("/health?detail=yes")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("query parameter detail:")
