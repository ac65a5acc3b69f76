"""AsyncClient and Client against a mocked transport: requests, typed answers, mapped errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from agentfield_arq.client.clients import AsyncClient, Client, resolve_server_url
from agentfield_arq.kernel import errors
from tests.unit.control_plane import FakeControlPlane


@pytest.fixture
def cp() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
async def client(cp: FakeControlPlane) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://cp", transport=cp.transport, poll_min_s=0.001) as c:
        yield c


def answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


async def test_execute_async_posts_the_input_and_headers_and_decodes_the_answer(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    submitted = await client.execute_async(
        "finance.deep_analysis", {"quarter": "Q3"}, headers={"X-Run-ID": "run_1"}
    )
    assert (submitted.execution_id, submitted.run_id, submitted.status) == (
        "exec_1",
        "run_1",
        "queued",
    )
    (request,) = cp.sent("POST", "/api/v1/execute/async/finance.deep_analysis")
    assert json.loads(request.content) == {"input": {"quarter": "Q3"}}
    assert request.headers["content-type"] == "application/json"


async def test_a_webhook_and_context_go_into_the_body(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    await client.execute_async("a.b", {}, webhook={"url": "https://h/x"}, context={"k": 1})
    (body,) = cp.bodies("POST", "/api/v1/execute/async/")
    assert body == {"input": {}, "webhook": {"url": "https://h/x"}, "context": {"k": 1}}


async def test_an_error_answer_raises_the_class_of_its_code_with_the_http_status(
    client: AsyncClient,
) -> None:
    with pytest.raises(errors.ExecutionNotFound) as caught:
        await client.get("exec_nope")
    assert caught.value.status_code == 404
    assert caught.value.message == "gone"


async def test_a_refused_key_and_a_rate_limit_raise_their_classes_with_retry_after(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    path = "/api/v1/execute/async/a.b"
    full = httpx.Response(429, json={"error": "full", "code": "key_queue_full"},
                          headers={"Retry-After": "5"})  # fmt: skip
    cp.script("POST", path, answer(401, {"error": "no", "code": "unauthorized"}), full)
    with pytest.raises(errors.Unauthorized):
        await client.execute_async("a.b")
    with pytest.raises(errors.KeyQueueFull) as caught:
        await client.execute_async("a.b")
    assert caught.value.retry_after_s == 5


def test_the_client_sends_its_key_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFIELD_API_KEY", "afk_env")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": "gone", "code": "execution_not_found"})

    for explicit, sent in ((None, "afk_env"), ("afk_arg", "afk_arg")):
        transport = httpx.MockTransport(handler)
        with (
            Client("http://cp", api_key=explicit, transport=transport) as c,
            pytest.raises(errors.ExecutionNotFound),
        ):
            c.get("exec_1")
        assert seen[-1].headers["authorization"] == f"Bearer {sent}"


async def test_an_unknown_error_code_is_kept_on_a_plain_api_error(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.script(
        "POST", "/api/v1/execute/async/a.b", answer(429, {"error": "new", "code": "brand_new_code"})
    )
    with pytest.raises(errors.ApiError) as caught:
        await client.execute_async("a.b")
    assert (type(caught.value), caught.value.code, caught.value.status_code) == (
        errors.ApiError,
        "brand_new_code",
        429,
    )


async def test_a_node_unavailable_answer_carries_its_retry_after(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    body = {"error": "node 'a' has not been heard from", "code": "node_unavailable"}
    cp.script(
        "POST",
        "/api/v1/execute/async/a.b",
        httpx.Response(503, json=body, headers={"Retry-After": "5"}),
    )
    with pytest.raises(errors.NodeUnavailable) as caught:
        await client.execute_async("a.b")
    assert (caught.value.status_code, caught.value.retry_after_s) == (503, 5)


async def test_an_error_without_a_json_body_still_raises_an_api_error(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.script("GET", "/api/v1/executions/exec_1", httpx.Response(502, text="bad gateway"))
    with pytest.raises(errors.ApiError, match="bad gateway"):
        await client.get("exec_1")


async def test_a_refused_connection_is_unreachable_and_known_not_sent(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.script("POST", "/api/v1/execute/async/a.b", httpx.ConnectError("refused"))
    with pytest.raises(errors.ControlPlaneUnreachable) as caught:
        await client.execute_async("a.b")
    assert caught.value.request_sent is False


async def test_a_read_timeout_is_unreachable_and_maybe_sent(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.script("POST", "/api/v1/execute/async/a.b", httpx.ReadTimeout("slow"))
    with pytest.raises(errors.ControlPlaneUnreachable) as caught:
        await client.execute_async("a.b")
    assert caught.value.request_sent is True


async def test_the_sync_route_answer_becomes_an_execution_with_its_error(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    sync = {"execution_id": "exec_9", "run_id": "run_9", "status": "failed",
            "error_message": "model refused", "duration_ms": 12, "finished_at": "t"}  # fmt: skip
    cp.script("POST", "/api/v1/execute/a.b", answer(200, sync))
    execution = await client.execute("a.b", {"x": 1})
    assert (execution.status, execution.error, execution.completed_at) == (
        "failed",
        "model refused",
        "t",
    )
    with pytest.raises(errors.ExecutionFailed) as caught:
        execution.outcome()
    assert (caught.value.execution_id, caught.value.error) == ("exec_9", "model refused")


async def test_the_sync_limit_raises_wait_timeout_naming_the_execution(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    late = {"error": "still running", "code": "sync_timeout", "execution_id": "exec_7"}
    cp.script("POST", "/api/v1/execute/a.b", answer(504, late))
    with pytest.raises(errors.WaitTimeout) as caught:
        await client.execute("a.b")
    assert caught.value.execution_ids == ["exec_7"]


def sync_answer(execution_id: str) -> httpx.Response:
    return answer(200, {"execution_id": execution_id, "status": "succeeded", "result": 1})


async def test_the_sync_route_is_read_for_as_long_as_sync_timeout_s_says(
    cp: FakeControlPlane,
) -> None:
    cp.script("POST", "/api/v1/execute/a.b", sync_answer("exec_1"))
    async with AsyncClient("http://cp", transport=cp.transport, sync_timeout_s=7.5) as client:
        await client.execute("a.b")
        await client.batch_status(["exec_1"])
    execute, poll = cp.requests
    assert execute.extensions["timeout"]["read"] == 7.5
    assert poll.extensions["timeout"]["read"] == 30.0


def test_the_sync_client_reads_the_sync_route_for_sync_timeout_s_too(
    cp: FakeControlPlane,
) -> None:
    cp.script("POST", "/api/v1/execute/a.b", sync_answer("exec_2"))
    with Client("http://cp", transport=cp.transport, sync_timeout_s=200) as client:
        assert client.execute("a.b").result == 1
    (execute,) = cp.requests
    assert execute.extensions["timeout"]["read"] == 200


async def test_batch_status_asks_in_chunks_of_500_and_merges_the_answers(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    found = await client.batch_status(f"exec_x{i}" for i in range(1200))
    assert len(found) == 1200
    assert found["exec_x3"].status == "not_found"
    assert [len(b["execution_ids"]) for b in cp.bodies("POST", "/api/v1/executions/batch")] == [
        500,
        500,
        200,
    ]


async def test_result_returns_the_value_and_none_for_a_null_result(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.outcomes["n.none"] = lambda given: {"status": "succeeded", "result": None}
    value = await client.execute_async("n.echo", {"a": [1]})
    nothing = await client.execute_async("n.none")
    assert await client.result(value.execution_id) == {"a": [1]}
    assert await client.result(nothing.execution_id) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("failed", errors.ExecutionFailed),
        ("cancelled", errors.ExecutionCancelled),
        ("timeout", errors.ExecutionTimedOut),
    ],
)
async def test_result_raises_the_error_of_each_unsuccessful_end(
    client: AsyncClient, cp: FakeControlPlane, status: str, kind: type[errors.ExecutionError]
) -> None:
    cp.outcomes["n.bad"] = lambda given: {"status": status, "error": "why"}
    submitted = await client.execute_async("n.bad")
    with pytest.raises(kind) as caught:
        await client.result(submitted.execution_id)
    assert (caught.value.execution_id, caught.value.status, caught.value.error) == (
        submitted.execution_id,
        status,
        "why",
    )


async def test_result_of_an_unknown_id_raises_execution_not_found(client: AsyncClient) -> None:
    with pytest.raises(errors.ExecutionNotFound):
        await client.result("exec_unknown")


async def test_wait_times_out_naming_the_unfinished_executions(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.outcomes["n.slow"] = lambda given: {"status": "running"}
    slow = await client.execute_async("n.slow")
    done = await client.execute_async("n.echo")
    with pytest.raises(errors.WaitTimeout) as caught:
        await client.wait([slow.execution_id, done.execution_id], timeout_s=0.05)
    assert caught.value.execution_ids == [slow.execution_id]


def test_the_sync_client_waits_until_every_execution_settles(cp: FakeControlPlane) -> None:
    cp.outcomes["n.bad"] = lambda given: {"status": "failed", "error": "no"}
    with Client("http://cp", transport=cp.transport, poll_min_s=0.001) as client:
        ok = client.execute_async("n.echo", {"q": 1})
        bad = client.execute_async("n.bad")
        found = client.wait([ok.execution_id, bad.execution_id], timeout_s=5)
        assert [e.status for e in found.values()] == ["succeeded", "failed"]
        assert client.result(ok.execution_id) == {"q": 1}
        assert client.get(bad.execution_id).error == "no"


def test_the_sync_client_wait_times_out_naming_the_unfinished(cp: FakeControlPlane) -> None:
    cp.outcomes["n.slow"] = lambda given: {"status": "queued"}
    with Client("http://cp", transport=cp.transport, poll_min_s=0.001) as client:
        slow = client.execute_async("n.slow")
        with pytest.raises(errors.WaitTimeout) as caught:
            client.wait([slow.execution_id], timeout_s=0.02)
    assert caught.value.execution_ids == [slow.execution_id]


def test_the_server_url_comes_from_the_argument_then_agentfield_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGENTFIELD_SERVER_URL", raising=False)
    monkeypatch.setenv("AGENTFIELD_SERVER", "http://cp:9000/")
    assert resolve_server_url() == "http://cp:9000"
    assert resolve_server_url("http://given") == "http://given"
    monkeypatch.delenv("AGENTFIELD_SERVER")
    assert resolve_server_url() == "http://127.0.0.1:8080"


async def test_an_execution_with_webhook_attempts_decodes_them(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    doc = {"execution_id": "exec_w", "status": "succeeded", "webhook_registered": True,
           "webhook_status": "retrying",
           "webhook_events": [{"id": "msg_1.1", "event_type": "execution.completed",
                               "status": "failed", "attempt": 1, "http_status": 503,
                               "error_message": "HTTP 503", "duration_ms": 12,
                               "created_at": "2026-11-26T12:00:00.000Z"}]}  # fmt: skip
    cp.script("GET", "/api/v1/executions/exec_w", answer(200, doc))
    execution = await client.get("exec_w")
    assert execution.webhook_status == "retrying"
    (event,) = execution.webhook_events
    assert (event.attempt, event.http_status, event.error_message) == (1, 503, "HTTP 503")


CANCELLED = {
    "execution_id": "exec_9",
    "run_id": "run_9",
    "status": "cancelled",
    "target": "a.b",
    "type": "reasoner",
    "created_at": "2026-01-01T00:00:00Z",
    "error": "too slow",
}


async def test_cancel_posts_the_reason_and_decodes_the_cancelled_execution(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    cp.script("POST", "/api/v1/executions/exec_9/cancel", answer(200, CANCELLED))
    doc = await client.cancel("exec_9", reason="too slow")
    assert (doc.status, doc.error) == ("cancelled", "too slow")
    assert cp.bodies("POST", "/api/v1/executions/exec_9/cancel") == [{"reason": "too slow"}]


def test_the_sync_client_cancels_without_a_reason_too(cp: FakeControlPlane) -> None:
    cp.script("POST", "/api/v1/executions/exec_9/cancel", answer(200, CANCELLED))
    with Client("http://cp", transport=cp.transport) as client:
        assert client.cancel("exec_9").status == "cancelled"
    assert cp.bodies("POST", "/api/v1/executions/exec_9/cancel") == [{}]


async def test_cancelling_an_execution_that_ended_otherwise_raises_invalid_transition(
    client: AsyncClient, cp: FakeControlPlane
) -> None:
    refusal = {"error": "it succeeded", "code": "invalid_transition", "status": "succeeded"}
    cp.script("POST", "/api/v1/executions/exec_9/cancel", answer(409, refusal))
    with pytest.raises(errors.InvalidTransition):
        await client.cancel("exec_9")
