"""The dashboard's reads: an execution's input and stored history (each step the transition
scripts record, decoded strictly), the last hour by status from the indexes, who a key is, and
the owner and lease of each node."""

from __future__ import annotations

from datetime import datetime

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.credentials import KeyStore, Role
from agentfield_arq.core.execution import submit
from agentfield_arq.core.history import Stored
from agentfield_arq.core.keys import HISTORY_MAX
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, HandBack
from agentfield_arq.kernel.codec import new_id, now_ms, rfc3339
from agentfield_arq.kernel.models import ExecuteRequest
from tests.e2e.agent_app import registration
from tests.integration.served import served
from tests.integration.test_api import _submit
from tests.keys import bearer

pytestmark = pytest.mark.integration


class StrictStored(Stored, forbid_unknown_fields=True, kw_only=True):
    """A history entry as stored, refusing fields the stored form does not declare."""


@pytest.fixture
def store(redis_client: Redis, settings: Settings) -> ExecutionStore:
    return ExecutionStore(redis_client, settings)


async def _history(api: httpx.AsyncClient, execution_id: str) -> dict[str, object]:
    answer = await api.get(f"/api/v1/executions/{execution_id}/history")
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


async def _stored(store: ExecutionStore, execution_id: str) -> list[StrictStored]:
    raw = await store.redis.lrange(store.keys.history(execution_id), 0, -1)  # type: ignore[misc]  # redis-py's async stubs
    return [msgspec.json.decode(r, type=StrictStored, strict=True) for r in raw]


def _now() -> tuple[str, int]:
    ms = now_ms()
    return rfc3339(ms), ms


async def test_the_history_keeps_each_step_from_queued_through_each_attempt_to_the_end(
    api: httpx.AsyncClient, store: ExecutionStore
) -> None:
    execution_id = await _submit(api)
    claimed = await store.claim(execution_id, *_now(), worker_id="w1")
    await store.requeue(execution_id, claimed.fields, HandBack(reason="drain"))
    job = (await store.fields(execution_id))["job"]
    await store.claim(execution_id, *_now(), job_id=job, worker_id="w2")
    await store.progress(execution_id, "running", *_now(), progress={"pct": 50}, message="half")
    await store.finish(execution_id, "succeeded", *_now(), result=b"1")
    found = await _history(api, execution_id)
    entries = found["entries"]
    assert isinstance(entries, list)
    steps = [(e["status"], e.get("attempt"), e.get("worker"), e.get("reason")) for e in entries]
    assert steps == [
        ("queued", None, None, None),
        ("running", 1, "w1", None),
        ("queued", 1, None, "drain"),
        ("running", 2, "w2", None),
        ("progress", 2, None, None),
        ("succeeded", 2, None, None),
    ]
    assert (entries[4]["progress"], entries[4]["message"]) == ({"pct": 50}, "half")
    assert all(e["at"] == rfc3339(e["ms"]) for e in entries)
    assert [e["ms"] for e in entries] == sorted(e["ms"] for e in entries)
    stream = await store.redis.xrange(store.keys.events)
    ours = [i.decode() for i, f in stream if f[b"execution_id"] == execution_id.encode()]
    assert [e["id"] for e in entries] == ours
    assert (found["last_event_id"], found["dropped"]) == (ours[-1], 0)
    assert len(await _stored(store, execution_id)) == len(entries)


async def test_a_second_claim_of_a_running_execution_is_a_step_with_no_stream_entry(
    api: httpx.AsyncClient, store: ExecutionStore
) -> None:
    execution_id = await _submit(api)
    await store.claim(execution_id, *_now(), worker_id="w1")
    await store.claim(execution_id, *_now(), worker_id="w2")  # w1 died and was not reaped
    last = (await _stored(store, execution_id))[-1]
    assert (last.status, last.attempt, last.worker, last.id) == ("running", 2, "w2", None)
    assert last.ms is not None  # its time, as no stream id tells it


async def test_an_agents_202_is_a_step_with_no_stream_entry(
    api: httpx.AsyncClient, store: ExecutionStore
) -> None:
    execution_id = await _submit(api)
    await store.claim(execution_id, *_now())
    assert await store.await_callback(execution_id, "1", "e2e")
    last = (await _stored(store, execution_id))[-1]
    assert (last.status, last.attempt, last.id) == ("accepted", 1, None)


async def test_a_chatty_execution_keeps_its_first_step_and_the_newest_and_says_how_many_went(
    api: httpx.AsyncClient, store: ExecutionStore
) -> None:
    execution_id = await _submit(api)
    await store.claim(execution_id, *_now())
    for i in range(HISTORY_MAX + 3):
        await store.progress(execution_id, "running", *_now(), message=f"m{i}")
    found = await _history(api, execution_id)
    entries = found["entries"]
    assert isinstance(entries, list)
    assert len(entries) == HISTORY_MAX
    assert entries[0]["status"] == "queued"
    assert entries[-1]["message"] == f"m{HISTORY_MAX + 2}"
    # queued, running, then HISTORY_MAX + 3 reports, of which HISTORY_MAX steps are kept.
    assert (entries[-1]["n"], found["dropped"]) == (HISTORY_MAX + 5, 5)


async def test_the_history_expires_with_the_execution(
    api: httpx.AsyncClient, store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(api)
    k = store.keys
    async with store.redis.pipeline(transaction=True) as tx:  # one instant: EXEC's
        tx.pttl(k.history(execution_id))
        tx.pttl(k.execution(execution_id))
        history_ms, record_ms = await tx.execute()
    assert 0 < history_ms <= record_ms
    await store.finish(execution_id, "cancelled", *_now())
    assert 0 < await store.redis.pttl(k.history(execution_id)) <= settings.retention_s * 1000


async def test_the_input_is_answered_as_it_was_submitted(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {"quarter": "Q3", "n": [1, 2]}}
    )
    execution_id = answer.json()["execution_id"]
    found = await api.get(f"/api/v1/executions/{execution_id}/input")
    assert found.status_code == 200
    assert found.json() == {"quarter": "Q3", "n": [1, 2]}


async def test_the_input_is_stored_as_the_bytes_sent_not_decoded_and_encoded_again(
    api: httpx.AsyncClient,
) -> None:
    sent = b'{ "n": [1,  2], "quarter" :"Q3", "big": 1.50 }'
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo",
        content=b'{"input": ' + sent + b"}",
        headers={"Content-Type": "application/json"},
    )
    found = await api.get(f"/api/v1/executions/{answer.json()['execution_id']}/input")
    assert found.content == sent


async def test_another_keys_execution_has_no_input_and_no_history_for_a_caller(
    api: httpx.AsyncClient, settings: Settings, redis_client: Redis
) -> None:
    execution_id = await _submit(api)
    _, caller = await KeyStore(redis_client, settings).create(Role.CALLER)
    async with served(settings, caller) as theirs:
        for tail in ("input", "history"):
            answer = await theirs.get(f"/api/v1/executions/{execution_id}/{tail}")
            assert answer.status_code == 404, tail
            assert answer.json()["code"] == "execution_not_found"
        mine = (await theirs.post("/api/v1/execute/async/e2e.echo", json={"input": {}})).json()
        answer = await theirs.get(f"/api/v1/executions/{mine['execution_id']}/history")
        assert [e["status"] for e in answer.json()["entries"]] == ["queued"]


async def test_the_activity_counts_each_minute_of_the_last_hour_by_status_now(
    api: httpx.AsyncClient, store: ExecutionStore
) -> None:
    now = now_ms()
    for minutes_ago in (0, 0, 30, 61):
        created = now - minutes_ago * 60_000
        request = ExecuteRequest(input={})
        await submit(store, "e2e.echo", request, {}, execution_id=new_id("exec", created))
    cancelled = await _submit(api)
    await api.post(f"/api/v1/executions/{cancelled}/cancel")
    answer = await api.get("/api/v1/activity")
    assert answer.status_code == 200
    minutes = answer.json()["minutes"]
    assert len(minutes) == 60
    assert minutes[-1]["at"] == rfc3339(now // 60_000 * 60_000)
    assert (minutes[-1]["counts"]["queued"], minutes[-1]["counts"]["cancelled"]) == (2, 1)
    assert minutes[-31]["counts"]["queued"] == 1
    total = sum(n for m in minutes for n in m["counts"].values())
    assert total == 4  # the one of 61 minutes ago is out of the hour


async def test_whoami_names_the_key_its_role_and_its_name(
    api: httpx.AsyncClient, settings: Settings, redis_client: Redis
) -> None:
    admin = (await api.get("/api/v1/whoami")).json()
    assert (admin["key_id"], admin["role"]) == ("admin", "admin")
    record, caller = await KeyStore(redis_client, settings).create(Role.CALLER, name="billing")
    async with served(settings, caller) as theirs:
        me = (await theirs.get("/api/v1/whoami")).json()
    assert me == {"key_id": record.id, "role": "caller", "name": "billing"}


async def test_a_node_shows_the_key_that_owns_it_and_when_its_lease_lapses(
    api: httpx.AsyncClient, settings: Settings, redis_client: Redis
) -> None:
    record, agent = await KeyStore(redis_client, settings).create(
        Role.AGENT, ["owned"], name="owned-agent"
    )
    register = registration("owned", "http://127.0.0.1:9")
    answer = await api.post("/api/v1/nodes/register", json=register, headers=bearer(agent))
    assert answer.status_code == 201, answer.text
    listed = {n["id"]: n for n in (await api.get("/api/v1/nodes")).json()["nodes"]}
    node = listed["owned"]
    assert (node["owner"], node["owner_name"]) == (record.id, "owned-agent")
    heard_ms = int(datetime.fromisoformat(node["last_heartbeat"]).timestamp() * 1000)
    assert node["lease_expires_at"] == rfc3339(heard_ms + round(settings.node_lease_s * 1000))
    one = (await api.get("/api/v1/nodes/owned")).json()
    assert (one["owner"], one["lease_expires_at"]) == (record.id, node["lease_expires_at"])
    assert (listed["e2e"]["owner"], listed["e2e"]["owner_name"]) == ("", "")
