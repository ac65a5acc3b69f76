"""Status views read by MGET (core/views.py): whose executions a key sees, and what a bounded
read leaves out, with the bytes Redis sends for it."""

from __future__ import annotations

import json

import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity, Role
from agentfield_arq.core.execution import submit
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration

CAP = 1_000
ALICE = Identity(key_id="key_alice", role=Role.CALLER)
BOB = Identity(key_id="key_bob", role=Role.CALLER)


@pytest.fixture
async def store(redis_client: Redis, settings: Settings) -> ExecutionStore:
    node = NodeRegistration(id="fin", base_url="http://127.0.0.1:9", reasoners=[TargetSpec(id="x")])
    await NodeRegistry(redis_client, settings).register(b'{"id": "fin"}', node)
    capped = msgspec.structs.replace(settings, batch_result_max_bytes=CAP)
    return ExecutionStore(redis_client, capped)


async def _queued(store: ExecutionStore, owner: Identity = ANONYMOUS_ADMIN) -> str:
    accepted = await submit(store, "fin.x", ExecuteRequest(input={}), {}, owner=owner)
    return accepted.execution_id


async def _succeeded(store: ExecutionStore, result: object) -> str:
    execution_id = await _queued(store)
    at = now_ms()
    await store.claim(execution_id, rfc3339(at), at)
    body = msgspec.json.encode(result)
    await store.finish(execution_id, "succeeded", rfc3339(at), at, result=body)
    return execution_id


async def _sent_bytes(redis: Redis) -> int:
    stats = await redis.info("stats")
    return int(stats["total_net_output_bytes"])


async def test_a_caller_sees_its_own_executions_and_no_other_keys_one_or_many(
    store: ExecutionStore,
) -> None:
    ids = [await _queued(store, who) for who in (ALICE, BOB, ANONYMOUS_ADMIN)]
    assert [doc is not None for doc in await store.get_views(ids, ALICE)] == [True, False, False]
    assert [doc is not None for doc in await store.get_views(ids, BOB)] == [False, True, False]
    assert all(doc is not None for doc in await store.get_views(ids))
    assert [await store.get_view(i, ALICE) is not None for i in ids] == [True, False, False]
    assert all([await store.get_view(i) is not None for i in ids])


async def test_a_result_over_the_cap_is_left_out_and_redis_never_sends_it(
    store: ExecutionStore, redis_client: Redis
) -> None:
    large = await _succeeded(store, "x" * 100_000)
    small = await _succeeded(store, "y")
    before = await _sent_bytes(redis_client)
    docs = await store.get_views([large, small])
    assert await _sent_bytes(redis_client) - before < 20_000
    summary, whole = (json.loads(doc or b"") for doc in docs)
    assert (summary["result_truncated"], summary["result_size"]) == (True, 100_002)
    assert "result" not in summary
    assert whole["result"] == "y"
    assert json.loads(await store.get_view(large) or b"")["result"] == "x" * 100_000


async def test_finish_names_only_the_documents_over_the_cap(store: ExecutionStore) -> None:
    large = await _succeeded(store, "x" * 2 * CAP)
    small = await _succeeded(store, "y")
    scores = await store.redis.zmscore(store.keys.large_docs, [large, small])
    assert [score is not None for score in scores] == [True, False]


async def test_a_large_results_summary_keeps_a_progress_that_has_a_result_member(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    at = now_ms()
    await store.progress(execution_id, "running", rfc3339(at), at, {"result": "partial"})
    result = msgspec.json.encode("z" * 2 * CAP)
    await store.finish(execution_id, "succeeded", rfc3339(at), at, result=result)
    summary = json.loads((await store.get_views([execution_id]))[0] or b"")
    assert summary["progress"] == {"result": "partial"}
    assert (summary["result_truncated"], summary["result_size"]) == (True, len(result))


async def test_a_document_over_a_cap_lowered_since_its_finish_goes_without_its_result(
    store: ExecutionStore,
) -> None:
    execution_id = await _succeeded(store, "x" * (CAP // 2))
    lower = msgspec.structs.replace(store.settings, batch_result_max_bytes=CAP // 4)
    reader = ExecutionStore(store.redis, lower)
    summary = json.loads((await reader.get_views([execution_id]))[0] or b"")
    assert (summary["result_truncated"], summary["result_size"]) == (True, CAP // 2 + 2)
    assert summary["execution_id"] == execution_id


async def test_a_batch_reads_the_notes_of_the_executions_a_note_named(
    store: ExecutionStore,
) -> None:
    noted, plain = await _queued(store), await _queued(store)
    assert await store.add_note(noted, b'{"message":"halfway"}')
    assert await store.redis.zmscore(store.keys.noted, [noted, plain]) == [
        pytest.approx(now_ms() + store.record_lifetime_s * 1000, abs=60_000),
        None,
    ]
    first, second = (json.loads(doc or b"") for doc in await store.get_views([noted, plain]))
    assert first["notes"] == [{"message": "halfway"}]
    assert "notes" not in second
