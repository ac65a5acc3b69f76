"""The API's contract where no worker or agent is involved: the real app, in this process, over
httpx's ASGI transport, with its lifespan entered and the session's Redis behind it."""

from __future__ import annotations

import json

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import Created, ExecutionStore, NewExecution
from agentfield_arq.kernel.codec import now_ms
from tests.e2e.agent_app import registration

pytestmark = pytest.mark.integration


async def _submit(api: httpx.AsyncClient, target: str = "e2e.echo") -> str:
    answer = await api.post(f"/api/v1/execute/async/{target}", json={"input": {}})
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


async def test_an_unknown_execution_id_is_404_execution_not_found(api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v1/executions/exec_doesnotexist")
    assert answer.status_code == 404
    assert answer.json()["code"] == "execution_not_found"
    assert "exec_doesnotexist" in answer.json()["error"]


async def test_batch_status_takes_a_thousand_ids_and_refuses_more(api: httpx.AsyncClient) -> None:
    ids = [await _submit(api) for _ in range(5)]
    asked = ids + [f"exec_unknown{i}" for i in range(995)]
    answer = await api.post("/api/v1/executions/batch-status", json={"execution_ids": asked})
    assert answer.status_code == 200
    assert len(answer.json()) == 1000
    assert all(answer.json()[i]["execution_id"] == i for i in ids)
    too_many = await api.post(
        "/api/v1/executions/batch-status", json={"execution_ids": [*asked, "one_more"]}
    )
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "too_many_ids"
    assert "execution_ids" in too_many.json()["error"]


async def test_a_target_without_a_dot_is_400_invalid_target(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/v1/execute/async/e2e", json={"input": {}})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_target"


async def test_an_unknown_node_or_reasoner_is_404_target_not_found(
    api: httpx.AsyncClient,
) -> None:
    for target in ("nobody.echo", "e2e.nothing"):
        answer = await api.post(f"/api/v1/execute/async/{target}", json={"input": {}})
        assert answer.status_code == 404
        assert answer.json()["code"] == "target_not_found"


async def test_invalid_bodies_are_400_and_name_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        (b'{"inputs": {}}', "input"),
        (b'{"input": [1, 2]}', "$.input"),
        (b'{"input": {}, "context": 3}', "$.context"),
        (b"not json", "JSON"),
    ]
    for body, field in cases:
        answer = await api.post(
            "/api/v1/execute/async/e2e.echo",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400, body
        assert answer.json()["code"] == "invalid_request"
        assert field in answer.json()["error"], answer.json()


async def test_an_invalid_run_id_header_is_400_naming_the_header(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}}, headers={"X-Run-ID": "a b"}
    )
    assert answer.status_code == 400
    assert "x-run-id" in answer.json()["error"]


async def test_a_body_over_the_cap_is_413(api: httpx.AsyncClient) -> None:
    big = json.dumps({"input": {"blob": "x" * 1_100_000}})
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"


async def test_an_unknown_route_is_a_json_404(api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v1/nope")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


async def test_a_method_a_route_does_not_take_is_a_json_405(api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v1/execute/async/e2e.echo")
    assert answer.status_code == 405
    assert answer.json()["code"] == "method_not_allowed"
    assert answer.headers["allow"] == "POST"


async def test_health_is_200_while_redis_answers(api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v1/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


async def test_the_openapi_document_describes_the_request_bodies(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/execute/async/{target}"]["post"]
    assert "requestBody" in operation
    schema = document["components"]["schemas"]["ExecuteRequest"]
    assert "input" in schema["required"]
    assert "/api/v1/executions/batch-status" in document["paths"]


@pytest.mark.parametrize(
    "base_url",
    ["http://0177.0.0.1:8001", "http://127.1:8001", "http://e2e:8001/%0d%0aX-Injected:%201"],
)
async def test_registering_an_ambiguous_base_url_is_400_and_leaves_the_node_as_it_was(
    api: httpx.AsyncClient, base_url: str
) -> None:
    answer = await api.post("/api/v1/nodes/register", json=registration("e2e", base_url))
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_base_url"
    assert answer.json()["error"].startswith("base_url: ")
    node = await api.get("/api/v1/nodes/e2e")
    assert node.json()["base_url"] == "http://127.0.0.1:9"


async def test_a_cancel_keeps_its_reason_as_the_executions_error(api: httpx.AsyncClient) -> None:
    execution_id = await _submit(api)
    answer = await api.post(
        f"/api/v1/executions/{execution_id}/cancel", json={"reason": "the user gave up"}
    )
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["error"]) == ("cancelled", "the user gave up")


async def test_a_cancel_without_a_body_says_it_was_requested(api: httpx.AsyncClient) -> None:
    execution_id = await _submit(api)
    answer = await api.post(f"/api/v1/executions/{execution_id}/cancel")
    assert (answer.status_code, answer.json()["error"]) == (200, "cancelled by request")


async def test_a_cancel_body_with_an_unknown_field_is_400_naming_it(api: httpx.AsyncClient) -> None:
    execution_id = await _submit(api)
    answer = await api.post(f"/api/v1/executions/{execution_id}/cancel", json={"why": "x"})
    assert answer.status_code == 400
    assert "why" in answer.json()["error"]


async def test_cancelling_again_with_another_reason_changes_nothing(api: httpx.AsyncClient) -> None:
    execution_id = await _submit(api)
    first = await api.post(f"/api/v1/executions/{execution_id}/cancel", json={"reason": "one"})
    again = await api.post(f"/api/v1/executions/{execution_id}/cancel", json={"reason": "two"})
    assert again.status_code == 200
    assert again.json() == first.json()


async def test_an_agent_reporting_cancelled_after_a_cancel_is_answered_200(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api)
    await api.post(f"/api/v1/executions/{execution_id}/cancel")
    answer = await api.post(
        f"/api/v1/executions/{execution_id}/status",
        json={"status": "cancelled", "error": "cancelled_by_control_plane"},
    )
    assert (answer.status_code, answer.json()["error"]) == (200, "cancelled by request")


async def test_a_report_refused_after_a_cancel_names_the_executions_status(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api)
    await api.post(f"/api/v1/executions/{execution_id}/cancel")
    answer = await api.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "succeeded", "result": 1}
    )
    assert answer.status_code == 409
    assert (answer.json()["code"], answer.json()["status"]) == ("invalid_transition", "cancelled")


async def test_a_node_silent_past_its_lease_is_503_node_unavailable_with_retry_after(
    api: httpx.AsyncClient, settings: Settings, redis_client: Redis
) -> None:
    silent_since = now_ms() - round(settings.node_lease_s * 1000) - 1000
    await redis_client.hset(
        Keys(settings.key_prefix).node("e2e"), "last_heartbeat_ms", str(silent_since)
    )  # type: ignore[misc]  # redis-py's async stubs
    answer = await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})
    assert answer.status_code == 503
    assert answer.json()["code"] == "node_unavailable"
    assert int(answer.headers["retry-after"]) > 0
    anyway = {"input": {}, "queue_if_unavailable": True}
    assert (await api.post("/api/v1/execute/async/e2e.echo", json=anyway)).status_code == 202


async def test_a_call_limit_of_zero_is_400_naming_timeout_s(api: httpx.AsyncClient) -> None:
    body = {"input": {}, "timeout_s": 0}
    answer = await api.post("/api/v1/execute/async/e2e.echo", json=body)
    assert answer.status_code == 400
    assert "timeout_s" in answer.json()["error"]


async def test_a_sync_execute_whose_redis_times_out_is_503_naming_the_execution_it_may_have_made(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stalled(self: ExecutionStore, new: NewExecution) -> Created:
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(ExecutionStore, "create", stalled)
    answer = await api.post("/api/v1/execute/e2e.echo", json={"input": {}})
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "unavailable"
    execution_id = answer.headers["x-execution-id"]
    assert answer.json()["execution_id"] == execution_id
    assert execution_id in answer.json()["error"]
