"""Submitting executions and applying agents' reports (core/execution.py) over fakeredis
(tests/unit/fake_valkey.py): the rules' exact answers and what they store, in the unit tier.
Several of these cases were added where mutation testing showed the suite would not notice a
change (docs/mutation.md)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from agentfield_arq.core.credentials import Identity, Role
from agentfield_arq.core.execution import (
    CANCELLED_ERROR,
    MAX_DURATION_MS,
    MAX_ERROR_CHARS,
    apply_callback,
    cancel,
    submit,
    truncate,
)
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import from_env
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import new_id, rfc3339
from agentfield_arq.kernel.errors import ExecutionNotFound, InvalidRequest, InvalidTransition
from agentfield_arq.kernel.models import (
    CallbackRequest,
    ExecuteRequest,
    NodeRegistration,
    TargetSpec,
)
from tests.unit.fake_valkey import fake_valkey

TARGET = "finance.deep_analysis"


@pytest.fixture
async def store() -> AsyncIterator[ExecutionStore]:
    redis = await fake_valkey()
    settings = from_env({}, key_prefix="u", execution_deadline_s=60.0)
    node = NodeRegistration(
        id="finance", base_url="http://agent.test", reasoners=[TargetSpec(id="deep_analysis")]
    )
    await NodeRegistry(redis, settings).register(b"{}", node)
    yield ExecutionStore(redis, settings)
    await redis.aclose()


async def _fields(store: ExecutionStore, execution_id: str) -> dict[str, str]:
    raw = await store.redis.hgetall(store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
    return {k.decode(): v.decode() for k, v in raw.items()}


async def _doc(store: ExecutionStore, execution_id: str) -> dict[str, Any]:
    raw = await store.get_doc(execution_id)
    assert raw is not None
    doc: dict[str, Any] = json.loads(raw)
    return doc


async def _queued(store: ExecutionStore, **headers: str) -> str:
    accepted = await submit(store, TARGET, ExecuteRequest(input={"q": 3}), headers)
    return accepted.execution_id


def _report(status: str, **fields: Any) -> CallbackRequest:
    return msgspec.json.decode(json.dumps({"status": status, **fields}), type=CallbackRequest)


# ---------------------------------------------------------------------------- submit


async def test_submit_stores_the_request_its_context_and_the_forwarded_headers(
    store: ExecutionStore,
) -> None:
    headers = {
        "x-run-id": "run_7",
        "x-parent-execution-id": "exec_parent",
        "x-session-id": "alice@example.com",
        "x-actor-id": "Alice Smith",
    }
    request = ExecuteRequest(input={"q": 3}, context={"lang": "en"})
    accepted = await submit(store, TARGET, request, headers, execution_id="exec_given")
    fields = await _fields(store, "exec_given")
    created = int(fields["created_ms"])
    assert fields == {  # the id and the creation time in RFC 3339 are the key's and created_ms'
        "run_id": "run_7",
        "target": TARGET,
        "node_id": "finance",
        "name": "deep_analysis",
        "input": '{"q":3}',
        "context": '{"lang":"en"}',
        "created_ms": str(created),
        "parent_execution_id": "exec_parent",
        "session_id": "alice@example.com",
        "actor_id": "Alice Smith",
        "owner": "anonymous",
        "type": "reasoner",
        "status": "queued",
        "attempt": "0",
        "deadline_ms": str(created + 60_000),
    }
    assert (accepted.execution_id, accepted.run_id, accepted.workflow_id) == (
        "exec_given",
        "run_7",
        "run_7",
    )
    assert (accepted.status, accepted.target, accepted.type) == ("queued", TARGET, "reasoner")
    assert accepted.created_at == accepted.enqueued_at == rfc3339(created)
    assert accepted.webhook_registered is False
    assert accepted.webhook_error is msgspec.UNSET
    assert await store.redis.zscore(store.keys.deadlines, "exec_given") == created + 60_000


async def test_the_workflow_header_names_the_run_when_there_is_no_run_header(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store, **{"x-run-id": "", "x-workflow-id": "wf_1"})
    assert (await _fields(store, execution_id))["run_id"] == "wf_1"
    fresh = await _queued(store)
    run_id = (await _fields(store, fresh))["run_id"]
    assert run_id.startswith("run_")
    assert fresh.startswith("exec_")


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("x-run-id", "has space", "header x-run-id: at most 64 characters of [A-Za-z0-9_.:-]"),
        ("x-run-id", "r" * 65, "header x-run-id: at most 64 characters of [A-Za-z0-9_.:-]"),
        (
            "x-parent-execution-id",
            "a/b",
            "header x-parent-execution-id: at most 64 characters of [A-Za-z0-9_.:-]",
        ),
        (
            "x-session-id",
            "tab\there",
            "header x-session-id: at most 256 printable ASCII characters",
        ),
        ("x-actor-id", "a" * 257, "header x-actor-id: at most 256 printable ASCII characters"),
    ],
)
async def test_a_malformed_header_is_refused_naming_it(
    store: ExecutionStore, header: str, value: str, message: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await _queued(store, **{header: value})
    assert str(caught.value) == message


async def test_headers_at_their_limits_are_kept(store: ExecutionStore) -> None:
    execution_id = await _queued(store, **{"x-run-id": "r" * 64, "x-actor-id": "~" * 256})
    fields = await _fields(store, execution_id)
    assert (fields["run_id"], fields["actor_id"]) == ("r" * 64, "~" * 256)


async def test_a_valid_webhook_is_stored_with_its_secret_and_headers(
    store: ExecutionStore,
) -> None:
    webhook = {"url": "https://hooks.example.com/in", "secret": "s3", "headers": {"X-A": "1"}}
    accepted = await submit(store, TARGET, ExecuteRequest(input={}, webhook=webhook), {})
    fields = await _fields(store, accepted.execution_id)
    assert fields["webhook_url"] == "https://hooks.example.com/in"
    assert json.loads(fields["webhook_headers"]) == {"X-A": "1"}
    assert "webhook_secret" not in fields  # kept beside the hash
    assert await store.redis.get(store.keys.webhook_secret(accepted.execution_id)) == b"s3"
    assert accepted.webhook_registered is True
    assert (await _doc(store, accepted.execution_id))["webhook_registered"] is True


async def test_a_webhook_without_a_secret_stores_none(store: ExecutionStore) -> None:
    webhook = {"url": "https://hooks.example.com/in"}
    accepted = await submit(store, TARGET, ExecuteRequest(input={}, webhook=webhook), {})
    assert await store.redis.exists(store.keys.webhook_secret(accepted.execution_id)) == 0


async def test_an_invalid_webhook_is_reported_and_not_registered(store: ExecutionStore) -> None:
    webhook = {"url": 5}
    accepted = await submit(store, TARGET, ExecuteRequest(input={}, webhook=webhook), {})
    assert isinstance(accepted.webhook_error, str)
    assert accepted.webhook_error.startswith("webhook: ")
    assert accepted.webhook_registered is False
    assert "webhook_url" not in await _fields(store, accepted.execution_id)


# ---------------------------------------------------------------------------- callbacks


async def test_an_unknown_status_is_refused_quoting_at_most_64_characters(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    with pytest.raises(InvalidRequest) as caught:
        await apply_callback(store, execution_id, _report("b" * 100))
    assert str(caught.value) == f"status: unknown status '{'b' * 64}'"


async def test_a_completed_report_succeeds_with_its_result_in_canonical_json(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    doc = json.loads(
        await apply_callback(store, execution_id, _report("completed", result={"b": 1, "a": 2}))
    )
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"b": 1, "a": 2}
    assert "error" not in doc


async def test_a_success_without_a_result_has_a_null_result(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    doc = json.loads(await apply_callback(store, execution_id, _report("succeeded")))
    assert "result" in doc
    assert doc["result"] is None


async def test_a_failure_without_an_error_says_what_the_agent_reported(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    doc = json.loads(await apply_callback(store, execution_id, _report("error")))
    assert (doc["status"], doc["error"]) == ("failed", "agent reported failed")
    assert "result" not in doc


async def test_a_failure_takes_error_message_when_error_is_absent_and_is_truncated(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    report = _report("failed", error_message="x" * (MAX_ERROR_CHARS + 10))
    doc = json.loads(await apply_callback(store, execution_id, report))
    assert doc["error"] == truncate("x" * (MAX_ERROR_CHARS + 10))
    other = await _queued(store)
    both = _report("failed", error="first", error_message="second")
    assert json.loads(await apply_callback(store, other, both))["error"] == "first"


@pytest.mark.parametrize(
    ("reported", "kept"),
    [(0, 0), (7.9, 7), (MAX_DURATION_MS, MAX_DURATION_MS), (MAX_DURATION_MS + 1, None), (-1, None)],
)
async def test_an_agent_s_own_duration_is_kept_when_plausible(
    store: ExecutionStore, reported: float, kept: int | None
) -> None:
    execution_id = await _queued(store)  # never started: no duration of our own to derive
    doc = json.loads(
        await apply_callback(store, execution_id, _report("succeeded", duration_ms=reported))
    )
    assert doc.get("duration_ms") == kept


async def test_progress_moves_a_queued_execution_to_running_and_keeps_the_progress(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    doc = json.loads(
        await apply_callback(store, execution_id, _report("in_progress", progress={"pct": 5}))
    )
    assert doc["status"] == "running"
    assert json.loads((await _fields(store, execution_id))["progress"]) == {"pct": 5}


async def test_a_report_for_an_unknown_execution_is_not_found(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFound) as caught:
        await apply_callback(store, "exec_nope", _report("succeeded"))
    assert str(caught.value) == "execution 'exec_nope' not found"
    with pytest.raises(ExecutionNotFound):
        await apply_callback(store, "exec_nope", _report("running"))


async def test_a_different_end_after_the_end_is_refused_naming_both(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    await apply_callback(store, execution_id, _report("succeeded"))
    with pytest.raises(InvalidTransition) as caught:
        await apply_callback(store, execution_id, _report("failed"))
    assert str(caught.value) == (
        f"execution '{execution_id}' is succeeded; cannot change it to failed"
    )


# ---------------------------------------------------------------------------- cancel


async def test_cancel_ends_an_execution_once_and_repeats_as_a_no_op(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    first = await cancel(store, execution_id)
    doc = json.loads(first)
    assert (doc["status"], doc["error"]) == ("cancelled", CANCELLED_ERROR)
    assert await cancel(store, execution_id) == first


async def test_cancel_after_the_end_or_of_nothing_is_refused(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    await apply_callback(store, execution_id, _report("succeeded"))
    with pytest.raises(InvalidTransition, match="is succeeded; cannot change it to cancelled"):
        await cancel(store, execution_id)
    with pytest.raises(ExecutionNotFound):
        await cancel(store, "exec_nope")


def test_errors_are_capped_with_an_ellipsis() -> None:
    assert truncate("e" * MAX_ERROR_CHARS) == "e" * MAX_ERROR_CHARS
    capped = truncate("e" * (MAX_ERROR_CHARS + 1))
    assert capped == "e" * (MAX_ERROR_CHARS - 1) + "…"


# ---------------------------------------------------------------------------- ids and logs


async def test_a_new_execution_id_sorts_by_the_submission_time(
    store: ExecutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agentfield_arq.core.execution.now_ms", lambda: 1_600_000_000_000)
    execution_id = await _queued(store)
    assert execution_id[:15] == new_id("exec", 1_600_000_000_000)[:15]


async def test_every_log_line_names_the_execution(
    store: ExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentfield_arq.core.execution")
    execution_id = await _queued(store, **{"x-run-id": "run_9"})
    await apply_callback(store, execution_id, _report("running"))
    await cancel(store, execution_id)
    assert [r.getMessage() for r in caplog.records] == [
        f"queued execution_id={execution_id} target={TARGET} run_id=run_9",
        f"callback execution_id={execution_id} status=running",
        f"cancel execution_id={execution_id}: ok (cancelled by request)",
    ]


async def test_cancelling_an_unknown_execution_names_it(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFound) as caught:
        await cancel(store, "exec_nope")
    assert str(caught.value) == "execution 'exec_nope' not found"


# ---------------------------------------------------------------------------- keys


CALLER = Identity(key_id="key_c", role=Role.CALLER)


async def test_a_caller_s_execution_names_its_key_and_counts_against_its_cap(
    store: ExecutionStore,
) -> None:
    request = ExecuteRequest(input={})
    accepted = await submit(store, TARGET, request, {}, owner=CALLER)
    assert (await _fields(store, accepted.execution_id))["owner"] == "key_c"
    active = await store.redis.zrange(store.keys.key_active("key_c"), 0, -1)
    assert active == [accepted.execution_id.encode()]
    admin = await submit(store, TARGET, request, {})  # an admin's key has no cap: not counted
    assert await store.redis.exists(store.keys.key_active("anonymous")) == 0
    assert (await _fields(store, admin.execution_id))["owner"] == "anonymous"


async def test_another_key_s_execution_cannot_be_cancelled_and_is_not_found(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)  # an admin's
    long_id = execution_id + "x" * 200
    with pytest.raises(ExecutionNotFound) as caught:
        await cancel(store, long_id, owner=CALLER)
    assert str(caught.value) == f"execution '{long_id[:100]}' not found"
    with pytest.raises(ExecutionNotFound):
        await cancel(store, execution_id, owner=CALLER)
    mine = (await submit(store, TARGET, ExecuteRequest(input={}), {}, owner=CALLER)).execution_id
    doc = json.loads(await cancel(store, mine, "no longer needed", owner=CALLER))
    assert (doc["status"], doc["error"]) == ("cancelled", "no longer needed")


async def test_a_refused_change_carries_the_execution_s_status(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    await apply_callback(store, execution_id, _report("succeeded"))
    with pytest.raises(InvalidTransition) as caught:
        await cancel(store, execution_id)
    assert caught.value.details == {"status": "succeeded"}
