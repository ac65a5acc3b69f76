"""The Lua transitions against a real Redis: atomic, final once terminal, readable by people."""

from __future__ import annotations

import asyncio
import hashlib
import json

import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.execution import submit
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import NodeSlots
from agentfield_arq.core.store import ExecutionStore, Outcome, RunEnd
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.errors import QueueFull, TargetNotFound
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(redis_client: Redis, settings: Settings) -> ExecutionStore:
    nodes = NodeRegistry(redis_client, settings)
    node = NodeRegistration(
        id="finance",
        base_url="http://127.0.0.1:9",
        reasoners=[TargetSpec(id="deep_analysis")],
        skills=[TargetSpec(id="add")],
    )
    await nodes.register(b'{"id": "finance"}', node)
    return ExecutionStore(redis_client, settings)


async def _queued(store: ExecutionStore, target: str = "finance.deep_analysis") -> str:
    accepted = await submit(store, target, ExecuteRequest(input={"quarter": "Q3"}), {})
    return accepted.execution_id


async def _hash(store: ExecutionStore, execution_id: str) -> dict[str, str]:
    """The execution's hash, read from Redis as `redis-cli HGETALL` would."""
    raw = await store.redis.hgetall(store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
    return {k.decode(): v.decode() for k, v in raw.items()}


def _now() -> tuple[str, int]:
    ms = now_ms()
    return rfc3339(ms), ms


async def test_submit_writes_hash_status_document_and_arq_job_together(
    store: ExecutionStore, redis_client: Redis
) -> None:
    execution_id = await _queued(store)
    k = store.keys
    fields = await _hash(store, execution_id)
    assert fields["status"] == "queued"
    assert fields["target"] == "finance.deep_analysis"
    assert json.loads(fields["input"]) == {"quarter": "Q3"}
    doc = json.loads(await store.get_doc(execution_id) or b"")
    assert doc["status"] == "queued"
    assert doc["type"] == "reasoner"
    assert await redis_client.zscore(k.queue, execution_id) is not None
    assert await redis_client.exists(k.arq_job(execution_id)) == 1
    assert await redis_client.zscore(k.deadlines, execution_id) is not None
    assert await redis_client.ttl(k.execution(execution_id)) > 0
    assert await redis_client.ttl(k.status_doc(execution_id)) > 0


async def test_a_skill_target_is_stored_with_type_skill(store: ExecutionStore) -> None:
    execution_id = await _queued(store, "finance.add")
    assert (await _hash(store, execution_id))["type"] == "skill"


async def test_an_unknown_node_or_name_writes_nothing(
    store: ExecutionStore, redis_client: Redis
) -> None:
    before = await redis_client.dbsize()
    with pytest.raises(TargetNotFound, match="node 'nobody'"):
        await _queued(store, "nobody.deep_analysis")
    with pytest.raises(TargetNotFound, match="no reasoner or skill 'nothing'"):
        await _queued(store, "finance.nothing")
    assert await redis_client.dbsize() == before


async def test_claim_moves_queued_to_running_and_counts_attempts(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    first = await store.claim(execution_id, *_now())
    assert first.outcome is Outcome.OK
    assert first.fields["attempt"] == "1"
    # The input as stored, bytes to send as they are; the node as the claim read it.
    assert first.input == b'{"quarter":"Q3"}'
    assert "input" not in first.fields
    assert first.node[0] is not None
    second = await store.claim(execution_id, *_now())
    assert second.fields["attempt"] == "2"
    assert second.fields["started_ms"] == first.fields["started_ms"]
    doc = json.loads(await store.get_doc(execution_id) or b"")
    assert doc["status"] == "running"
    assert doc["started_at"] == rfc3339(int(first.fields["started_ms"]))
    assert "started_at" not in await _hash(store, execution_id)  # the hash keeps it in ms


async def test_a_repeat_of_a_report_settled_with_a_whole_sha1_digest_is_still_a_no_op(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    await store.claim(execution_id, *_now())
    await store.finish(execution_id, "succeeded", *_now(), result=b"1")
    whole = hashlib.sha1(b"succeeded\n\n1").hexdigest()  # as finish.lua stored it before
    assert whole.startswith((await _hash(store, execution_id))["digest"])
    await store.redis.hset(store.keys.execution(execution_id), "digest", whole)  # type: ignore[misc]  # redis-py's async stubs
    again = await store.finish(execution_id, "succeeded", *_now(), result=b"1")
    other = await store.finish(execution_id, "succeeded", *_now(), result=b"2")
    assert (again.outcome, other.outcome) == (Outcome.NOOP, Outcome.CONFLICT)


async def test_terminal_is_final_and_an_identical_repeat_is_a_no_op(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    await store.claim(execution_id, *_now())
    done = await store.finish(execution_id, "succeeded", *_now(), result=b'{"x":1}', want_doc=True)
    assert done.outcome is Outcome.OK
    assert done.doc is not None
    assert json.loads(done.doc)["result"] == {"x": 1}
    again = await store.finish(execution_id, "succeeded", *_now(), result=b'{"x":1}', want_doc=True)
    assert again.outcome is Outcome.NOOP
    assert again.doc == done.doc
    # Without asking, nothing is sent back (a worker ignores the document).
    quiet = await store.finish(execution_id, "succeeded", *_now(), result=b'{"x":1}')
    assert (quiet.outcome, quiet.doc) == (Outcome.NOOP, None)
    other = await store.finish(execution_id, "succeeded", *_now(), result=b'{"x":2}')
    assert other.outcome is Outcome.CONFLICT
    failed = await store.finish(execution_id, "failed", *_now(), error="late")
    assert failed.outcome is Outcome.CONFLICT
    assert json.loads(await store.get_doc(execution_id) or b"")["result"] == {"x": 1}


async def test_a_stale_worker_attempt_cannot_settle_the_execution(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    await store.claim(execution_id, *_now())
    await store.claim(execution_id, *_now())  # another worker took over: attempt 2
    stale = await store.finish(execution_id, "succeeded", *_now(), result=b"1", attempt="1")
    assert stale.outcome is Outcome.STALE
    current = await store.finish(execution_id, "succeeded", *_now(), result=b"2", attempt="2")
    assert current.outcome is Outcome.OK


async def _running_with_a_slot(
    store: ExecutionStore, settings: Settings
) -> tuple[str, str, NodeSlots]:
    """A claimed execution whose run job arq started (its lock and try count set) and which
    holds its node's one slot, and a second execution waiting for that slot, its job deferred
    a minute as arq's Retry defers it."""
    slots = NodeSlots(store.redis, msgspec.structs.replace(settings, node_max_in_flight=1))
    running, waiting = await _queued(store), await _queued(store)
    k, now = store.keys, now_ms()
    assert (await slots.take(running, now)).taken  # type: ignore[union-attr]
    assert not (await slots.take(waiting, now)).taken  # type: ignore[union-attr]
    await store.redis.zadd(k.queue, {waiting: now + 60_000})
    await store.redis.set(k.arq_in_progress(running), b"1")
    await store.redis.incr(k.arq_retry(running))
    await store.claim(running, *_now())
    return running, waiting, slots


async def _run_job_ended(store: ExecutionStore, job_id: str) -> bool:
    k = store.keys
    left = await store.redis.exists(
        k.arq_job(job_id), k.arq_in_progress(job_id), k.arq_retry(job_id)
    )
    return left == 0 and await store.redis.zscore(k.queue, job_id) is None


async def test_a_workers_settle_ends_its_run_job_and_gives_its_slot_to_the_oldest_waiter(
    store: ExecutionStore, settings: Settings
) -> None:
    running, waiting, slots = await _running_with_a_slot(store, settings)
    end = RunEnd(job_id=running, node_id="finance")
    done = await store.finish(running, "succeeded", *_now(), result=b"1", attempt="1", run_end=end)
    assert done.outcome is Outcome.OK
    assert await _run_job_ended(store, running)
    assert await slots.in_flight("finance", now_ms()) == 0
    assert (await store.redis.zscore(store.keys.queue, waiting) or 0) <= now_ms()


async def test_a_workers_settle_ends_its_run_job_even_when_the_attempt_was_stale(
    store: ExecutionStore, settings: Settings
) -> None:
    running, _, slots = await _running_with_a_slot(store, settings)
    end = RunEnd(job_id=running, node_id="finance")
    stale = await store.finish(running, "succeeded", *_now(), result=b"1", attempt="7", run_end=end)
    assert stale.outcome is Outcome.STALE
    assert await _run_job_ended(store, running)
    assert await slots.in_flight("finance", now_ms()) == 0


async def test_a_settle_without_a_run_end_leaves_arqs_job_and_the_slot_alone(
    store: ExecutionStore, settings: Settings
) -> None:
    running, _, slots = await _running_with_a_slot(store, settings)
    done = await store.finish(running, "succeeded", *_now(), result=b"1", attempt="1")
    assert done.outcome is Outcome.OK
    assert await store.redis.exists(store.keys.arq_in_progress(running)) == 1
    assert await slots.in_flight("finance", now_ms()) == 1


async def test_any_json_result_is_kept_byte_for_byte(store: ExecutionStore) -> None:
    for result in (b"null", b'[1,"two",null]', b'"words"', b"12345678901234567890"):
        execution_id = await _queued(store)
        await store.finish(execution_id, "succeeded", *_now(), result=result)
        doc = await store.get_doc(execution_id) or b""
        assert doc.endswith(b',"result":' + result + b"}")


async def test_terminal_records_expire_after_the_retention(
    store: ExecutionStore, redis_client: Redis, settings: Settings
) -> None:
    execution_id = await _queued(store)
    await store.finish(execution_id, "cancelled", *_now(), error="cancelled by test")
    k = store.keys
    for key in (k.execution(execution_id), k.status_doc(execution_id)):
        ttl = await redis_client.ttl(key)
        assert settings.retention_s - 5 <= ttl <= settings.retention_s
    assert await redis_client.zscore(k.deadlines, execution_id) is None


async def test_the_result_is_stored_once_not_in_the_hash(
    store: ExecutionStore, redis_client: Redis
) -> None:
    execution_id = await _queued(store)
    big = b'"' + b"x" * 10_000 + b'"'
    await store.finish(execution_id, "succeeded", *_now(), result=big)
    fields = await redis_client.hgetall(store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
    assert all(len(v) < 1000 for v in fields.values())


async def test_racing_finishers_leave_exactly_one_outcome(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    await store.claim(execution_id, *_now())
    outcomes = await asyncio.gather(
        store.finish(execution_id, "succeeded", *_now(), result=b"1", attempt="1", want_doc=True),
        store.finish(execution_id, "cancelled", *_now(), error="cancelled", want_doc=True),
        store.finish(execution_id, "timeout", *_now(), error="late", want_doc=True),
        store.finish(execution_id, "failed", *_now(), error="boom", want_doc=True),
    )
    assert [o.outcome for o in outcomes].count(Outcome.OK) == 1
    winner = next(o for o in outcomes if o.outcome is Outcome.OK)
    assert await store.get_doc(execution_id) == winner.doc


async def test_the_sweep_only_times_out_executions_past_their_deadline(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    not_due = await store.finish(execution_id, "timeout", *_now(), only_if_overdue=True)
    assert not_due.outcome is Outcome.NOT_DUE
    fields = await _hash(store, execution_id)
    later = int(fields["deadline_ms"]) + 1
    assert await store.overdue(later, 10) == [execution_id]
    due = await store.finish(execution_id, "timeout", rfc3339(later), later, only_if_overdue=True)
    assert due.outcome is Outcome.OK
    assert await store.overdue(later, 10) == []


async def test_every_transition_is_appended_to_the_capped_event_stream(
    store: ExecutionStore, redis_client: Redis
) -> None:
    execution_id = await _queued(store)
    await store.claim(execution_id, *_now())
    await store.finish(execution_id, "succeeded", *_now(), result=b"1")
    entries = await redis_client.xrange(Keys("t").events)
    statuses = [e[1][b"status"] for e in entries if e[1][b"execution_id"] == execution_id.encode()]
    assert statuses == [b"queued", b"running", b"succeeded"]


async def _calls(redis: Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_batch_read_is_one_mget_and_no_script_in_the_order_asked(
    store: ExecutionStore, redis_client: Redis
) -> None:
    ids = [await _queued(store) for _ in range(3)]
    asked = [ids[2], "exec_unknown", ids[0], *(f"exec_unknown{n}" for n in range(50))]
    before = [await _calls(redis_client, c) for c in ("mget", "evalsha")]
    docs = await store.get_views(asked)
    assert [await _calls(redis_client, c) for c in ("mget", "evalsha")] == [
        before[0] + 1,
        before[1],
    ]
    assert len(docs) == len(asked)
    assert json.loads(docs[0] or b"")["execution_id"] == ids[2]
    assert docs[1] is None
    assert json.loads(docs[2] or b"")["execution_id"] == ids[0]
    assert docs[3:] == [None] * 50


async def test_a_progress_report_starts_a_queued_execution_but_cannot_revive_a_terminal_one(
    store: ExecutionStore,
) -> None:
    execution_id = await _queued(store)
    started = await store.progress(execution_id, "running", *_now(), {"pct": 10})
    assert started.outcome is Outcome.OK
    assert json.loads(started.doc or b"")["status"] == "running"
    await store.finish(execution_id, "succeeded", *_now(), result=b"1")
    late = await store.progress(execution_id, "running", *_now())
    assert late.outcome is Outcome.CONFLICT


async def test_a_full_queue_refuses_new_executions_and_writes_nothing(
    redis_client: Redis, settings: Settings
) -> None:
    nodes = NodeRegistry(redis_client, settings)
    await nodes.register(
        b"{}", NodeRegistration(id="n", base_url="http://a:1", reasoners=[TargetSpec(id="r")])
    )
    store = ExecutionStore(redis_client, msgspec.structs.replace(settings, max_queued=2))
    await _queued(store, "n.r")
    await _queued(store, "n.r")
    before = await redis_client.dbsize()
    with pytest.raises(QueueFull, match="retry later"):
        await _queued(store, "n.r")
    assert await redis_client.dbsize() == before


async def test_ids_that_could_name_other_keys_are_unknown(store: ExecutionStore) -> None:
    execution_id = await _queued(store)
    crafted = f"{execution_id}:status"
    assert await store.get_view(crafted) is None
    views = await store.get_views([crafted, execution_id])
    assert views[0] is None
    assert views[1] is not None
    assert (await store.finish(crafted, "failed", *_now(), error="x")).outcome is Outcome.MISSING


async def test_each_transition_moves_the_execution_between_the_status_indexes(
    store: ExecutionStore, redis_client: Redis
) -> None:
    execution_id = await _queued(store)
    k = store.keys

    async def statuses() -> list[str]:
        return [
            s
            for s in ("queued", "running", "succeeded")
            if await redis_client.zscore(k.index_status(s), execution_id) is not None
        ]

    assert await statuses() == ["queued"]
    await store.claim(execution_id, *_now())
    assert await statuses() == ["running"]
    await store.finish(execution_id, "succeeded", *_now(), result=b"1")
    assert await statuses() == []  # succeeded has no index: the global one serves it
    failed = await _queued(store)
    await store.finish(failed, "failed", *_now(), error="no")
    assert await redis_client.zscore(k.index_status("failed"), failed) == 0
    assert await redis_client.zscore(k.index_status("queued"), failed) is None
    for index in (k.index_all, k.index_target("finance.deep_analysis")):
        assert await redis_client.zscore(index, execution_id) == 0
    # The sweep cuts the global index; a target's also expires once nothing joins it.
    assert await redis_client.ttl(k.index_all) == -1
    assert await redis_client.ttl(k.index_target("finance.deep_analysis")) > 0


async def test_the_sweep_drops_index_members_whose_records_expired_and_cuts_the_ancient(
    store: ExecutionStore, redis_client: Redis
) -> None:
    kept, expired = await _queued(store), await _queued(store)
    k = store.keys
    ancient = "exec_0000000000aaaaaaaaaaaaaaaa"
    await redis_client.zadd(k.index_status("succeeded"), {ancient: 0})
    await redis_client.delete(k.execution(expired), k.status_doc(expired))
    assert await store.prune_indexes(now_ms(), 500) == 1
    assert [m.decode() for m in await redis_client.zrange(k.index_all, 0, -1)] == [kept]
    assert [m.decode() for m in await redis_client.zrange(k.index_status("queued"), 0, -1)] == [
        kept
    ]
    assert await redis_client.exists(k.index_status("succeeded")) == 0


async def test_the_sweep_cuts_the_ancient_from_registered_targets_and_stored_keys_indexes(
    store: ExecutionStore, redis_client: Redis
) -> None:
    kept = await _queued(store)
    k = store.keys
    ancient = "exec_0000000000aaaaaaaaaaaaaaaa"
    target, owner = k.index_target("finance.deep_analysis"), k.index_owner("key_a")
    await redis_client.hset(k.api_keys, "key_a", "digest")  # type: ignore[misc]  # redis-py's async stubs
    await redis_client.zadd(target, {ancient: 0})
    await redis_client.zadd(owner, {ancient: 0, kept: 0})
    await store.prune_indexes(now_ms(), 500)
    assert [m.decode() for m in await redis_client.zrange(target, 0, -1)] == [kept]
    assert [m.decode() for m in await redis_client.zrange(owner, 0, -1)] == [kept]
