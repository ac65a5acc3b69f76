"""Memory over the API, as AgentField's SDK uses it: scopes from headers, the Go server's
answers (404 for a missing key, 204 for a delete), caps, change entries, vector search."""

from __future__ import annotations

import math
import struct

import httpx
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.vectors import pack, rank, unpack
from agentfield_arq.kernel.memory import VectorRecord

pytestmark = pytest.mark.integration

RUN = {"X-Workflow-ID": "run_1", "X-Session-ID": "sess 1", "X-Actor-ID": "alice@example.com"}


async def test_a_value_set_without_a_scope_lands_in_the_most_specific_scope_and_reads_back(
    api: httpx.AsyncClient,
) -> None:
    put = await api.post(
        "/api/v1/memory/set", json={"key": "user.a", "data": {"x": 1}}, headers=RUN
    )
    assert put.status_code == 200, put.text
    assert put.json()["scope"] == "workflow"
    assert put.json()["scope_id"] == "run_1"
    got = await api.post("/api/v1/memory/get", json={"key": "user.a"}, headers=RUN)
    assert got.status_code == 200
    assert got.json()["data"] == {"x": 1}
    assert got.json()["created_at"] == put.json()["created_at"]


async def test_a_missing_key_is_404_memory_not_found_unlike_a_missing_route(
    api: httpx.AsyncClient,
) -> None:
    got = await api.post("/api/v1/memory/get", json={"key": "nope"}, headers=RUN)
    assert got.status_code == 404
    assert got.json()["code"] == "memory_not_found"
    route = await api.post("/api/v1/memory/nothing-here", json={})
    assert route.json()["code"] == "not_found"


async def test_a_read_without_scope_walks_workflow_session_actor_then_global(
    api: httpx.AsyncClient,
) -> None:
    for scope, value in (("global", "g"), ("actor", "a"), ("session", "s")):
        answer = await api.post(
            "/api/v1/memory/set", json={"key": "k", "data": value, "scope": scope}, headers=RUN
        )
        assert answer.status_code == 200, answer.text
    got = await api.post("/api/v1/memory/get", json={"key": "k"}, headers=RUN)
    assert got.json()["data"] == "s"
    only_actor = {"X-Actor-ID": RUN["X-Actor-ID"]}
    got = await api.post("/api/v1/memory/get", json={"key": "k"}, headers=only_actor)
    assert got.json()["data"] == "a"
    got = await api.post("/api/v1/memory/get", json={"key": "k"})
    assert got.json()["data"] == "g"


async def test_an_explicit_scope_without_its_header_is_no_scope_at_all_404_naming_the_header(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.post("/api/v1/memory/set", json={"key": "k", "data": 1, "scope": "session"})
    assert answer.status_code == 404
    assert "x-session-id" in answer.json()["error"]


async def test_delete_answers_204_and_list_shows_what_is_left_by_key(
    api: httpx.AsyncClient,
) -> None:
    for key in ("b", "a", "c"):
        await api.post("/api/v1/memory/set", json={"key": key, "data": key}, headers=RUN)
    deleted = await api.post("/api/v1/memory/delete", json={"key": "b"}, headers=RUN)
    assert deleted.status_code == 204
    again = await api.post("/api/v1/memory/delete", json={"key": "b"}, headers=RUN)
    assert again.status_code == 204
    listed = await api.get("/api/v1/memory/list", params={"scope": "workflow"}, headers=RUN)
    assert [r["key"] for r in listed.json()] == ["a", "c"]
    unscoped = await api.get("/api/v1/memory/list", headers=RUN)
    assert [r["key"] for r in unscoped.json()] == ["a", "c"]


async def test_values_over_the_cap_are_413_and_a_full_scope_refuses_new_keys_only(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    big = await api.post("/api/v1/memory/set", json={"key": "big", "data": "x" * 300_000})
    assert big.status_code == 413
    assert big.json()["code"] == "memory_value_too_large"
    # The cap counts keys of a scope: fill it (the default cap, by HSET behind the API's back).
    key = Keys("t").memory("global", "global")
    await redis_client.hset(key, mapping={f"f{i}": "{}" for i in range(10_000)})  # type: ignore[misc]  # redis-py's async stubs
    full = await api.post("/api/v1/memory/set", json={"key": "new", "data": 1})
    assert full.status_code == 409
    assert full.json()["code"] == "memory_scope_full"
    kept = await api.post("/api/v1/memory/set", json={"key": "f1", "data": 1})
    assert kept.status_code == 200


async def test_a_private_scope_expires_after_its_ttl_and_global_does_not(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    await api.post("/api/v1/memory/set", json={"key": "k", "data": 1}, headers=RUN)
    await api.post("/api/v1/memory/set", json={"key": "k", "data": 1})
    keys = Keys("t")
    assert 0 < await redis_client.ttl(keys.memory("workflow", "run_1")) <= 30 * 86_400
    assert await redis_client.ttl(keys.memory("global", "global")) == -1


async def test_set_and_delete_append_change_entries_with_the_previous_value(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    await api.post("/api/v1/memory/set", json={"key": "user.x", "data": 1}, headers=RUN)
    await api.post("/api/v1/memory/set", json={"key": "user.x", "data": {"v": 2}}, headers=RUN)
    await api.post("/api/v1/memory/delete", json={"key": "user.x"}, headers=RUN)
    entries = await redis_client.xrange(Keys("t").memory_events)
    fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
    assert [f["action"] for f in fields] == ["set", "set", "delete"]
    assert fields[1]["data"] == '{"v":2}'
    assert fields[1]["previous_data"] == "1"
    assert fields[2]["previous_data"] == '{"v":2}'
    assert "data" not in fields[2]
    assert fields[0]["workflow_id"] == "run_1"
    assert fields[0]["agent_id"] == RUN["X-Actor-ID"]


async def test_vector_search_ranks_by_cosine_and_applies_metadata_filters(
    api: httpx.AsyncClient,
) -> None:
    vectors = {"east": [1.0, 0.0], "north": [0.0, 1.0], "northeast": [1.0, 1.0]}
    for key, embedding in vectors.items():
        answer = await api.post(
            "/api/v1/memory/vector/set",
            json={"key": key, "embedding": embedding, "metadata": {"kind": key[0]}},
            headers=RUN,
        )
        assert answer.status_code == 200, answer.text
    found = await api.post(
        "/api/v1/memory/vector/search",
        json={"query_embedding": [1.0, 0.1], "top_k": 2, "filters": {}},
        headers=RUN,
    )
    hits = found.json()
    assert [h["key"] for h in hits] == ["east", "northeast"]
    assert math.isclose(hits[0]["score"], 1 / math.sqrt(1.01), rel_tol=1e-6)  # float32
    assert math.isclose(hits[0]["distance"], 1 - hits[0]["score"], rel_tol=1e-6)
    only_n = await api.post(
        "/api/v1/memory/vector/search",
        json={"query_embedding": [1.0, 0.1], "filters": {"kind": "n"}},
        headers=RUN,
    )
    assert [h["key"] for h in only_n.json()] == ["northeast", "north"]
    gone = await api.post("/api/v1/memory/vector/delete", json={"key": "east"}, headers=RUN)
    assert gone.json() == {"status": "deleted"}


async def test_a_zero_vector_scores_zero_and_an_oversized_one_is_refused(
    api: httpx.AsyncClient,
) -> None:
    zero = await api.post("/api/v1/memory/vector/set", json={"key": "z", "embedding": [0, 0]})
    assert zero.status_code == 200
    hits = await api.post("/api/v1/memory/vector/search", json={"query_embedding": [1, 0]})
    assert hits.json()[0]["score"] == 0
    wide = await api.post("/api/v1/memory/vector/set", json={"key": "w", "embedding": [1] * 5000})
    assert wide.status_code == 413
    empty = await api.post("/api/v1/memory/vector/set", json={"key": "e", "embedding": []})
    assert empty.status_code == 400


def test_rank_skips_vectors_of_another_dimension() -> None:
    def record(key: str) -> VectorRecord:
        return VectorRecord(
            created_at="", updated_at="", key=key, scope="global", scope_id="global", norm=1.0
        )

    found = [(record("a"), unpack(pack([1.0, 0.0]))), (record("b"), unpack(pack([1.0, 0, 0])))]
    hits = rank(found, unpack(pack([1.0, 0.0])), 10, None)
    assert [h.key for h in hits] == ["a"]


async def test_vectors_keep_a_readable_record_and_packed_float32_numbers(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    await api.post("/api/v1/memory/vector/set", json={"key": "v", "embedding": [0.5, -2.0]})
    keys = Keys("t")
    record = await redis_client.hget(keys.vectors("global", "global"), "v")  # type: ignore[misc]  # redis-py's async stubs
    assert record is not None
    assert b'"norm":' in record
    numbers = await redis_client.hget(keys.vector_numbers("global", "global"), "v")  # type: ignore[misc]  # redis-py's async stubs
    norm = math.hypot(0.5, -2.0)
    assert numbers == struct.pack("<2f", 0.5 / norm, -2.0 / norm)
