"""Hostile input changes nothing and never answers 5xx: the API's limits, over the shared
in-process client (no worker, no agent)."""

from __future__ import annotations

import logging

import httpx
import msgspec
import pytest

from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from tests.e2e.agent_app import registration
from tests.integration.served import served

pytestmark = pytest.mark.integration

RESULT_CAP = 2_000
BUDGET = 5_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small batch caps, so that a few kilobytes show them; a queue of five."""
    return msgspec.structs.replace(
        settings, batch_result_max_bytes=RESULT_CAP, batch_max_bytes=BUDGET, max_queued=5
    )


async def _submit(api: httpx.AsyncClient) -> httpx.Response:
    return await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})


async def _succeeded(api: httpx.AsyncClient, result: object) -> str:
    answer = await _submit(api)
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    report = {"status": "succeeded", "result": result}
    done = await api.post(f"/api/v1/executions/{execution_id}/status", json=report)
    assert done.status_code == 200, done.text
    return execution_id


async def _batch(api: httpx.AsyncClient, ids: list[str]) -> dict[str, dict[str, object]]:
    answer = await api.post("/api/v1/executions/batch-status", json={"execution_ids": ids})
    assert answer.status_code == 200, answer.text
    found: dict[str, dict[str, object]] = answer.json()
    return found


def _deep(levels: int) -> bytes:
    return b'{"input": {"x": ' + b"[" * levels + b"]" * levels + b"}}"


async def test_json_nested_past_the_limit_is_400_json_too_deep_naming_it(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    headers = {"Content-Type": "application/json"}
    for levels in (settings.max_json_depth, 1_000, 100_000):
        answer = await api.post(
            "/api/v1/execute/async/e2e.echo", content=_deep(levels), headers=headers
        )
        assert answer.status_code == 400, levels
        assert answer.json()["code"] == "json_too_deep"
        assert "max_json_depth" in answer.json()["error"]
    within = _deep(settings.max_json_depth - 2)
    answer = await api.post("/api/v1/execute/async/e2e.echo", content=within, headers=headers)
    assert answer.status_code == 202, answer.text


async def test_a_query_number_in_unicode_digits_is_400_naming_the_parameter(
    api: httpx.AsyncClient,
) -> None:
    for limit in ("²", "٣", "1e3", "-1", "0", "501", " 5", "9" * 40):
        answer = await api.get("/api/v1/webhooks/dead", params={"limit": limit})
        assert answer.status_code == 400, limit
        assert answer.json()["code"] == "invalid_request"
        assert "query parameter limit" in answer.json()["error"]
    assert (await api.get("/api/v1/webhooks/dead", params={"limit": "7"})).status_code == 200


async def test_a_body_that_is_not_json_is_415_even_where_the_route_reads_none(
    api: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/execute/async/e2e.echo", "/api/v1/nodes/e2e/shutdown"):
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": kind} if kind else {}
            answer = await api.post(path, content=b'{"input": {}}', headers=headers)
            assert answer.status_code == 415, (path, kind)
            assert answer.json()["code"] == "unsupported_media_type"
            assert answer.headers["connection"] == "close"  # the body was left unread


async def test_an_empty_post_without_a_content_type_still_works(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/v1/nodes/e2e/heartbeat")
    assert answer.status_code == 200, answer.text
    charset = {"Content-Type": "application/json; charset=utf-8"}
    answer = await api.post("/api/v1/nodes/e2e/heartbeat", content=b"{}", headers=charset)
    assert answer.status_code == 200, answer.text


async def test_a_host_the_api_does_not_serve_is_421_and_loopback_names_are_served(
    api: httpx.AsyncClient,
) -> None:
    for host in ("evil.example", "api.test.evil.example", "127.0.0.2"):
        answer = await api.get("/api/v1/health", headers={"Host": host})
        assert answer.status_code == 421, host
        assert answer.json()["code"] == "host_not_allowed"
    for host in ("localhost", "localhost:8080", "127.0.0.1:1", "[::1]:8080", "API.TEST"):
        assert (await api.get("/api/v1/health", headers={"Host": host})).status_code == 200, host


async def test_the_global_queue_cap_is_503_with_retry_after(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    for _ in range(settings.max_queued):
        assert (await _submit(api)).status_code == 202
    answer = await _submit(api)
    assert answer.status_code == 503
    assert answer.json()["code"] == "queue_full"
    assert answer.headers["Retry-After"] == str(settings.queue_retry_after_s)


async def test_batch_status_summarises_a_result_over_the_cap_and_get_reads_it_whole(
    api: httpx.AsyncClient,
) -> None:
    small = await _succeeded(api, {"text": "s" * 100})
    large_result = {"text": "L" * (RESULT_CAP * 2)}
    large = await _succeeded(api, large_result)
    found = await _batch(api, [small, large])
    assert found[small]["result"] == {"text": "s" * 100}
    assert "result_truncated" not in found[small]
    assert "result" not in found[large]
    assert found[large]["result_truncated"] is True
    assert found[large]["result_size"] == len(msgspec.json.encode(large_result))
    assert found[large]["status"] == "succeeded"
    whole = (await api.get(f"/api/v1/executions/{large}")).json()
    assert whole["result"] == large_result


async def test_batch_status_stops_sending_results_once_its_answer_holds_the_budget(
    api: httpx.AsyncClient,
) -> None:
    # Three results under the per-result cap whose sum is over the budget.
    each = {"text": "m" * (RESULT_CAP - 500)}
    ids = [await _succeeded(api, each) for _ in range(3)]
    found = await _batch(api, ids)
    sent = [i for i in ids if "result" in found[i]]
    assert len(sent) == BUDGET // RESULT_CAP
    assert all(found[i]["result_truncated"] is True for i in ids if i not in sent)


async def test_batch_status_over_its_budget_still_sends_documents_without_results_whole(
    settings: Settings,
) -> None:
    tiny = msgspec.structs.replace(settings, batch_max_bytes=10)  # under any one document
    async with served(tiny) as api:
        node = registration("e2e", "http://127.0.0.1:9")
        assert (await api.post("/api/v1/nodes/register", json=node)).status_code == 201
        done = await _succeeded(api, {"text": "r"})
        queued = (await _submit(api)).json()["execution_id"]
        found = await _batch(api, [done, queued])
    assert found[done]["result_truncated"] is True
    assert found[queued]["status"] == "queued"
    assert "result_truncated" not in found[queued]
    assert "started_at" in found[queued]


async def test_an_unexpected_exception_is_one_clean_500_logged_once(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: ExecutionStore, execution_id: str) -> bytes | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ExecutionStore, "get_view", broken)
    with caplog.at_level(logging.ERROR):
        answer = await api.get("/api/v1/executions/exec_x")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error; see the API's log", "code": "internal_error"}
    assert len([r for r in caplog.records if r.exc_info]) == 1
