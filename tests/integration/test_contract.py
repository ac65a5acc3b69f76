"""The contract, held to the kernel's Structs: what each Lua script writes (the status document,
the webhook view spliced into it, each attempt record) decodes into them strictly, refusing any
field they do not declare and any value of the wrong type; and every answer the API gives is
one its OpenAPI document lists, in the shape it lists."""

from __future__ import annotations

import socket
import types
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.api.openapi import EDGE_ERRORS, Operation
from agentfield_arq.api.routes import OPERATIONS
from agentfield_arq.core.execution import submit
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Attempt, Outbox, Outcome
from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.errors import Unavailable, http_status
from agentfield_arq.kernel.models import (
    ErrorBody,
    ExecuteRequest,
    Execution,
    Node,
    NodeList,
    NodeRegistration,
    TargetSpec,
    WebhookEvent,
)
from tests.conftest import TEST_HOST
from tests.e2e.agent_app import registration
from tests.integration.served import served
from tests.keys import ADMIN_KEY

pytestmark = pytest.mark.integration

T = TypeVar("T")
HOOK = {"url": "https://hooks.example.com/in?token=t0p", "secret": "s3cret"}
# No callback URL: deciding tells no agent (tests/e2e/test_agentfield_sdk.py covers that call).
ASK = {"approval_request_id": "req_contract", "expires_in_hours": 1}


class StrictWebhookEvent(WebhookEvent, forbid_unknown_fields=True, kw_only=True):
    """An attempt record that refuses fields WebhookEvent does not declare."""


class StrictExecution(Execution[msgspec.Raw], forbid_unknown_fields=True, kw_only=True):
    """A status document (or the view GET answers) that refuses undeclared fields."""

    # Narrower than the base's list[WebhookEvent], for decoding only; and a Struct copies a
    # mutable default for each instance (ruff does not see that it is one).
    webhook_events: list[StrictWebhookEvent] = []  # type: ignore[assignment]  # noqa: RUF012


def strict(raw: bytes | None, kind: type[T]) -> T:
    """Decode JSON into `kind` without any of msgspec's lenient conversions."""
    assert raw is not None
    value: T = msgspec.json.decode(raw, type=kind, strict=True)
    return value


@pytest.fixture
async def store(redis_client: Redis, settings: Settings) -> ExecutionStore:
    node = NodeRegistration(
        id="finance", base_url="http://127.0.0.1:9", reasoners=[TargetSpec(id="deep_analysis")]
    )
    await NodeRegistry(redis_client, settings).register(b'{"id": "finance"}', node)
    return ExecutionStore(redis_client, settings)


@pytest.fixture
def outbox(redis_client: Redis, settings: Settings) -> Outbox:
    return Outbox(redis_client, settings)


async def stored(store: ExecutionStore, execution_id: str) -> StrictExecution:
    """Decode, strictly, everything Redis holds for the execution; returns the view GET answers."""
    doc = strict(await store.get_doc(execution_id), StrictExecution)
    view = strict(await store.get_view(execution_id), StrictExecution)
    records = await store.redis.lrange(store.keys.webhook_events(execution_id), 0, -1)  # type: ignore[misc]  # redis-py's async stubs
    events = [strict(record, StrictWebhookEvent) for record in records]
    assert (doc.webhook_status, doc.webhook_events) == (None, [])
    assert (view.execution_id, view.status) == (doc.execution_id, doc.status)
    assert view.webhook_events == events
    return view


async def _queued(store: ExecutionStore, webhook: Any = HOOK) -> str:
    request = ExecuteRequest(input={"quarter": "Q3"}, webhook=webhook)
    return (await submit(store, "finance.deep_analysis", request, {})).execution_id


async def _finished(store: ExecutionStore, result: bytes = b'{"x":1}', webhook: Any = HOOK) -> str:
    execution_id = await _queued(store, webhook)
    now = now_ms()
    await store.finish(execution_id, "succeeded", rfc3339(now), now, result=result)
    return execution_id


async def _attempt(outbox: Outbox, execution_id: str) -> Attempt:
    attempt = await outbox.begin(execution_id, now_ms())
    assert isinstance(attempt, Attempt), attempt
    return attempt


def test_the_strict_structs_refuse_an_undeclared_field_and_a_wrong_type() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `extra`"):
        strict(b'{"execution_id": "e", "status": "queued", "extra": 1}', StrictExecution)
    with pytest.raises(msgspec.ValidationError, match=r"got `str` - at `\$.attempt`"):
        strict(b'{"id": "w.1", "attempt": "1"}', StrictWebhookEvent)


async def test_create_writes_a_document_the_strict_execution_decodes(
    store: ExecutionStore,
) -> None:
    view = await stored(store, await _queued(store))
    assert (view.status, view.type, view.target) == ("queued", "reasoner", "finance.deep_analysis")
    assert (view.webhook_registered, view.started_at, view.result) == (True, None, msgspec.UNSET)


async def test_claim_writes_a_running_document_and_await_callback_keeps_it_decodable(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    now = now_ms()
    assert (await store.claim(execution_id, rfc3339(now), now)).outcome == "ok"
    assert (await stored(store, execution_id)).started_at == rfc3339(now)
    assert await store.await_callback(execution_id, "1", "finance")
    assert (await stored(store, execution_id)).status == "running"


async def test_progress_writes_a_running_document_the_strict_execution_decodes(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    now = now_ms()
    await store.progress(execution_id, "running", rfc3339(now), now, {"pct": 10})
    assert (await stored(store, execution_id)).status == "running"


async def test_finish_without_a_result_or_a_webhook_writes_a_decodable_document(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store, webhook=None)
    now = now_ms()
    await store.claim(execution_id, rfc3339(now), now)
    await store.finish(execution_id, "failed", rfc3339(now), now + 7, error="agent said no")
    view = await stored(store, execution_id)
    assert (view.status, view.error, view.duration_ms) == ("failed", "agent said no", 7)
    assert (view.completed_at, view.result) == (rfc3339(now), msgspec.UNSET)
    assert view.webhook_status is None


@pytest.mark.parametrize("result", [b'{"x":[1,null]}', b"null", b"12345678901234567890123"])
async def test_finish_with_a_result_and_a_webhook_writes_a_decodable_document_and_view(
    store: ExecutionStore, result: bytes
) -> None:
    view = await stored(store, await _finished(store, result))
    assert isinstance(view.result, msgspec.Raw)
    assert bytes(view.result) == result
    assert (view.webhook_status, view.webhook_next_attempt_at) == ("pending", None)


async def test_webhook_begin_and_a_retry_record_write_decodable_records(
    store: ExecutionStore, outbox: Outbox
) -> None:
    execution_id = await _finished(store)
    attempt = await _attempt(outbox, execution_id)
    assert (await stored(store, execution_id)).webhook_status == "delivering"
    later = now_ms() + 5000
    await outbox.record(
        attempt, Outcome.RETRY, now_ms(), duration_ms=12, http_status=503, next_attempt_ms=later
    )
    view = await stored(store, execution_id)
    assert (view.webhook_status, view.webhook_next_attempt_at) == ("pending", rfc3339(later))
    [event] = view.webhook_events
    assert (event.status, event.attempt, event.http_status) == ("failed", 1, 503)
    assert event.duration_ms == 12
    assert event.event_type == "execution.completed"


async def test_a_delivered_record_decodes_strictly(store: ExecutionStore, outbox: Outbox) -> None:
    execution_id = await _finished(store)
    attempt = await _attempt(outbox, execution_id)
    await outbox.record(attempt, Outcome.DELIVERED, now_ms(), duration_ms=3, http_status=200)
    view = await stored(store, execution_id)
    assert view.webhook_status == "delivered"
    assert [e.status for e in view.webhook_events] == ["delivered"]


async def test_a_dead_record_and_its_redrive_write_decodable_views(
    store: ExecutionStore, outbox: Outbox
) -> None:
    execution_id = await _finished(store)
    attempt = await _attempt(outbox, execution_id)
    await outbox.record(attempt, Outcome.DEAD, now_ms(), duration_ms=4, error="HTTP 410")
    assert (await stored(store, execution_id)).webhook_status == "failed"
    await outbox.redrive(execution_id, now_ms())
    view = await stored(store, execution_id)
    assert (view.webhook_status, len(view.webhook_events)) == ("pending", 1)


async def test_an_attempt_lost_with_its_worker_writes_a_decodable_record(
    store: ExecutionStore, outbox: Outbox
) -> None:
    execution_id = await _finished(store)
    await _attempt(outbox, execution_id)
    await _attempt(outbox, execution_id)  # finds the first still `delivering`: it was lost
    [lost] = (await stored(store, execution_id)).webhook_events
    assert (lost.status, lost.attempt, lost.duration_ms) == ("failed", 1, None)
    assert lost.error_message


# ---------------------------------------------------------------------------- the API's answers

# Answers that keep a node's registration fields, known or not, as AgentField's control plane
# does: they are held to their types only.
KEEP_UNKNOWN_FIELDS: set[object] = {Node, NodeList}
NODE = "/api/v1/nodes/{node_id}"
EXECUTION = "/api/v1/executions/{execution_id}"
AGENT_EXECUTION = "/api/v1/agents/{node_id}/executions/{execution_id}"
# One call of every operation: (method, path, its parameters, body). The node calls come
# first; `{id}` and `{hooked}` (with a webhook) are executions submitted after them.
Call = tuple[str, str, dict[str, str], Any]
NODE_CALLS: list[Call] = [
    ("POST", "/api/v1/nodes/register", {}, registration("e2e", "http://127.0.0.1:9")),
    ("POST", "/api/v1/nodes", {}, registration("alias", "http://127.0.0.1:9")),
    ("GET", "/api/v1/nodes", {}, None),
    ("GET", NODE, {"node_id": "e2e"}, None),
    ("POST", NODE + "/heartbeat", {"node_id": "e2e"}, {"status": "ready"}),
    ("PATCH", NODE + "/status", {"node_id": "e2e"}, {"status": "ready"}),
    ("PUT", NODE + "/status", {"node_id": "e2e"}, None),
    ("POST", NODE + "/shutdown", {"node_id": "alias"}, {"reason": "done"}),
]
EXECUTION_CALLS: list[Call] = [
    ("POST", "/api/v1/execute/async/{target}", {"target": "e2e.echo"}, {"input": {}}),
    ("POST", "/api/v1/execute/{target}", {"target": "e2e.echo"}, {"input": {}}),
    ("POST", "/api/v1/executions/batch-status", {}, {"execution_ids": ["{id}", "exec_x"]}),
    ("GET", EXECUTION, {"execution_id": "{id}"}, None),
    ("GET", "/api/v1/executions", {}, None),
    ("GET", "/api/v1/runs/{run_id}", {"run_id": "{run}"}, None),
    ("POST", EXECUTION + "/status", {"execution_id": "{id}"}, {"status": "running"}),
    ("POST", EXECUTION + "/logs", {"execution_id": "{id}"}, {"entries": [{"message": "m"}]}),
    ("POST", "/api/v1/workflow/executions/events", {}, {"execution_id": "{id}"}),
    ("POST", EXECUTION + "/cancel", {"execution_id": "{hooked}"}, None),
    ("POST", EXECUTION + "/restart", {"execution_id": "{hooked}"}, {"reason": "contract"}),
    # Terminal by now, so that its event stream ends and it may be retried.
    ("GET", EXECUTION + "/events", {"execution_id": "{hooked}"}, None),
    ("POST", EXECUTION + "/retry", {"execution_id": "{hooked}"}, None),
    ("POST", EXECUTION + "/webhook/retry", {"execution_id": "{hooked}"}, None),
    ("GET", "/api/v1/webhooks/dead", {}, None),
    ("POST", "/api/v1/executions/note", {}, {"message": "m", "tags": ["t"]}),
    ("GET", EXECUTION + "/notes", {"execution_id": "{id}"}, None),
    ("GET", EXECUTION + "/input", {"execution_id": "{id}"}, None),
    ("GET", EXECUTION + "/history", {"execution_id": "{hooked}"}, None),
    ("GET", "/api/v1/activity", {}, None),
    ("GET", "/api/v1/whoami", {}, None),
    ("POST", "/api/v1/memory/set", {}, {"key": "k", "data": {"v": 1}}),
    ("POST", "/api/v1/memory/get", {}, {"key": "k"}),
    ("GET", "/api/v1/memory/list", {}, None),
    ("POST", "/api/v1/memory/delete", {}, {"key": "k"}),
    ("POST", "/api/v1/memory/vector/set", {}, {"key": "v", "embedding": [1.0], "metadata": {}}),
    ("POST", "/api/v1/memory/vector/search", {}, {"query_embedding": [1.0]}),
    ("POST", "/api/v1/memory/vector/delete", {}, {"key": "v"}),
    ("GET", "/api/v1/memory/events/history", {}, None),
    ("GET", "/api/v1/memory/events/sse", {}, None),
    ("GET", "/api/v1/discovery/capabilities", {}, None),
    (
        "POST",
        AGENT_EXECUTION + "/request-approval",
        {"node_id": "e2e", "execution_id": "{id}"},
        ASK,
    ),
    ("GET", AGENT_EXECUTION + "/approval-status", {"node_id": "e2e", "execution_id": "{id}"}, None),
    ("POST", EXECUTION + "/approve", {"execution_id": "{id}"}, {"feedback": "yes"}),
    (
        "POST",
        AGENT_EXECUTION + "/awaiter-status",
        {"node_id": "e2e", "execution_id": "{id}"},
        {"status": "waiting"},
    ),
    ("POST", EXECUTION + "/reject", {"execution_id": "{paused}"}, None),
    ("POST", "/api/v1/did/register", {}, {}),
    ("GET", "/api/v1/health", {}, None),
    ("GET", "/health", {}, None),
    ("GET", "/ready", {}, None),
    ("GET", "/metrics", {}, None),
    ("GET", "/openapi.json", {}, None),
]
CALLS = NODE_CALLS + EXECUTION_CALLS
BY_ROUTE = {(op.method, op.path): op for op in OPERATIONS}
# An endless event stream: tests/integration/test_events.py reads it.
NOT_CALLED = {("GET", "/api/v1/events")}


async def _call_each_operation(api: httpx.AsyncClient) -> list[tuple[Operation, httpx.Response]]:
    """The answer to every call of CALLS, with the operation it calls."""
    answers = [await _call(api, call, {}) for call in NODE_CALLS]
    ids = {
        "{id}": await _submit(api, None),
        "{hooked}": await _submit(api, HOOK),
        "{paused}": await _paused(api),
    }
    ids["{run}"] = await _run_of(api, ids["{id}"])
    return answers + [await _call(api, call, ids) for call in EXECUTION_CALLS]


async def _paused(api: httpx.AsyncClient) -> str:
    """An execution waiting for approval (with Redis down, an id nobody submitted)."""
    execution_id = await _submit(api, None)
    await api.post(f"/api/v1/executions/{execution_id}/status", json={"status": "running"})
    await api.post(f"/api/v1/agents/e2e/executions/{execution_id}/request-approval", json=ASK)
    return execution_id


async def _submit(api: httpx.AsyncClient, webhook: object) -> str:
    """A new execution's id (with Redis down, an id nobody submitted)."""
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}, "webhook": webhook}
    )
    return str(answer.json()["execution_id"]) if answer.status_code == 202 else "exec_unsubmitted"


async def _run_of(api: httpx.AsyncClient, execution_id: str) -> str:
    """The run id of an execution (with Redis down, a run nobody made)."""
    answer = await api.get(f"/api/v1/executions/{execution_id}")
    return str(answer.json()["run_id"]) if answer.status_code == 200 else "run_unmade"


async def _call(
    api: httpx.AsyncClient, call: Call, ids: dict[str, str]
) -> tuple[Operation, httpx.Response]:
    method, path, params, body = call
    url = path.format(**{name: ids.get(value, value) for name, value in params.items()})
    content = None if body is None else msgspec.json.encode(body)
    for placeholder, execution_id in ids.items():
        content = content and content.replace(placeholder.encode(), execution_id.encode())
    # The execution a note (or any call from inside a reasoner) is about.
    headers = {"X-Execution-ID": ids["{id}"]} if "{id}" in ids else {}
    if content is not None:
        headers["Content-Type"] = "application/json"
    if path.endswith("/memory/list"):
        url += "?scope=global"
    if path.endswith("/memory/events/sse"):
        url += "?max_s=0.2"  # a stream: ended, so that the transport can hand it over
    answer = await api.request(method, url, content=content, headers=headers)
    return BY_ROUTE[method, path], answer


def _check(op: Operation, answer: httpx.Response) -> None:
    """The status is one the operation documents, and the body decodes into its shape."""
    edge = (http_status(kind) for kind in EDGE_ERRORS)
    documented = {*op.answers, *(http_status(kind) for kind in op.answered_errors), *edge, 500}
    assert answer.status_code in documented, (op.method, op.path, answer.text)
    shape = op.answers[answer.status_code][1] if answer.status_code in op.answers else ErrorBody
    content_type = answer.headers.get("content-type", "")
    if content_type.startswith("text/event-stream") and answer.content.startswith(b": subscribed"):
        return  # the memory change stream, asked to end at once
    if shape is None:  # documented without a body (204), an event stream or the metrics
        if op.method == "GET":
            assert content_type.startswith(("text/event-stream", "text/plain")), op.path
        else:
            assert answer.content == b"", (op.method, op.path)
        return
    if isinstance(shape, type) and issubclass(shape, msgspec.Struct):
        shape = _forbidding(shape)
    msgspec.json.decode(answer.content, type=shape, strict=True)


def _forbidding(kind: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """`kind`, refusing fields it does not declare, unless it keeps them by design."""
    if kind in KEEP_UNKNOWN_FIELDS:
        return kind
    return types.new_class(f"Strict{kind.__name__}", (kind,), {"forbid_unknown_fields": True})


def test_the_calls_below_cover_every_operation() -> None:
    assert sorted((m, p) for m, p, *_ in CALLS) == sorted(set(BY_ROUTE) - NOT_CALLED)


async def test_every_answer_is_documented_and_decodes_into_the_shape_documented(
    settings: Settings,
) -> None:
    # No worker runs: the sync execute answers its documented 504 when its limit passes.
    settings = msgspec.structs.replace(settings, sync_timeout_s=0.2)
    async with served(settings) as api:
        answers = await _call_each_operation(api)
    for op, answer in answers:
        _check(op, answer)
    # No worker runs: the sync execute times out, and /ready says so.
    assert [a.status_code for _, a in answers if a.status_code >= 400] == [504, 501, 503]


async def test_with_redis_down_each_operation_answers_503_exactly_where_documented() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with served(
        from_env(
            {},
            redis_url=f"redis://127.0.0.1:{port}/0",
            admin_key=ADMIN_KEY,
            allowed_hosts=TEST_HOST,
        )
    ) as api:
        answers = await _call_each_operation(api)
    for op, answer in answers:
        _check(op, answer)
        assert (answer.status_code == 503) == (Unavailable in op.errors), (op.method, op.path)
