"""The API over two Redis servers (core/routing.py), in this process: the session's as home
and one started for this module as shard `1`, with node `far` routed to it. What the e2e test
(tests/e2e/test_shards.py) cannot count: the round trips per Redis, and ids made before the
routes were set."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import Role
from agentfield_arq.core.execution import submit
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.lineage import Parent
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.routing import stamp
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import new_id, now_ms, rfc3339
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration
from agentfield_arq.ops.embedded import EmbeddedRedis
from agentfield_arq.workers.worker import create_worker
from tests.e2e.agent_app import registration
from tests.integration.served import served
from tests.keys import issue


@pytest.fixture
def routed(settings: Settings, shard_server: EmbeddedRedis) -> Settings:
    """The test settings with shard 1 (flushed: ours) taking node `far`."""
    with contextlib.closing(redis.Redis.from_url(shard_server.url)) as client:
        client.flushall()
    return msgspec.structs.replace(
        settings, redis_shards=f"1={shard_server.url}", redis_routes="far=1"
    )


@pytest.fixture
async def api(routed: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the routed app, with nodes `near` (home) and `far` (shard 1) registered."""
    async with served(routed) as client:
        for node_id in ("near", "far"):
            record = registration(node_id, "http://127.0.0.1:9")
            answer = await client.post("/api/v1/nodes/register", json=record)
            assert answer.status_code == 201, answer.text
        yield client


def _calls(url: str, command: str) -> int:
    with contextlib.closing(redis.Redis.from_url(url)) as client:
        stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]  # redis-py's sync stubs
    return stats.get(f"cmdstat_{command}", {}).get("calls", 0)


def _reset_stats(*urls: str) -> None:
    for url in urls:
        with contextlib.closing(redis.Redis.from_url(url)) as client:
            client.config_resetstat()


async def test_batch_status_asks_each_redis_once(routed: Settings, api: httpx.AsyncClient) -> None:
    ids = []
    for target in ("near.echo", "far.echo") * 3:
        answer = await api.post(f"/api/v1/execute/async/{target}", json={"input": {}})
        ids.append(answer.json()["execution_id"])
    asked = {"execution_ids": ids}
    _reset_stats(routed.redis_url, routed.routes.urls["1"])
    answer = await api.post("/api/v1/executions/batch-status", json=asked)
    assert {doc["status"] for doc in answer.json().values()} == {"queued"}
    for url in (routed.redis_url, routed.routes.urls["1"]):
        assert (_calls(url, "mget"), _calls(url, "evalsha")) == (1, 0)


async def test_an_agent_key_owns_its_routed_node_where_the_keys_are(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    mine = await issue(routed, Role.AGENT, ["far"])
    theirs = await issue(routed, Role.AGENT, ["elsewhere"])
    beat = "/api/v1/nodes/far/heartbeat"
    assert (await api.post(beat, headers={"Authorization": f"Bearer {mine}"})).status_code == 200
    refused = await api.post(beat, headers={"Authorization": f"Bearer {theirs}"})
    assert refused.status_code == 403, refused.text
    again = await api.post(
        "/api/v1/nodes/register",
        json=registration("far", "http://127.0.0.1:8"),
        headers={"Authorization": f"Bearer {theirs}"},
    )
    assert again.status_code == 403, again.text


async def test_an_id_made_before_the_routes_is_found_home_by_every_read(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    # Made on home by an API without routes: its last character is random, here shard 1's.
    home = connect(routed.redis_url, routed)
    try:
        made = stamp(new_id("exec"), "1")
        store = ExecutionStore(home, routed)
        await submit(store, "near.echo", ExecuteRequest(input={}), {}, made)
    finally:
        await home.aclose()
    assert (await api.get(f"/api/v1/executions/{made}")).json()["status"] == "queued"
    batch = await api.post("/api/v1/executions/batch-status", json={"execution_ids": [made]})
    assert batch.json()[made]["status"] == "queued"
    cancelled = await api.post(f"/api/v1/executions/{made}/cancel")
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    with contextlib.closing(redis.Redis.from_url(routed.routes.urls["1"])) as shard:
        assert not shard.exists(Keys(routed.key_prefix).execution(made))


async def test_readiness_names_each_redis_without_a_live_worker(api: httpx.AsyncClient) -> None:
    answer = await api.get("/ready")
    assert answer.status_code == 503
    assert answer.json()["code"] == "not_ready"
    assert "on Redis 0, 1" in answer.json()["error"]


async def test_a_retry_and_a_restart_go_to_the_redis_that_takes_the_node_now(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    # `far` was home before the routes sent it to shard 1: one of its executions is there.
    home = connect(routed.redis_url, routed)
    try:
        record = msgspec.json.encode(registration("far", "http://127.0.0.1:9"))
        await NodeRegistry(home, routed).register(
            record, msgspec.json.decode(record, type=NodeRegistration)
        )
        old = await submit(ExecutionStore(home, routed), "far.echo", ExecuteRequest(input={}), {})
    finally:
        await home.aclose()
    assert (await api.post(f"/api/v1/executions/{old.execution_id}/cancel")).status_code == 200
    keys = Keys(routed.key_prefix)
    with contextlib.closing(redis.Redis.from_url(routed.routes.urls["1"])) as shard:
        for route in ("retry", "restart"):
            answer = await api.post(f"/api/v1/executions/{old.execution_id}/{route}")
            assert answer.status_code == 202, answer.text
            new = answer.json()["execution_id"]
            assert new.endswith("1")
            assert shard.exists(keys.execution(new))


async def test_metrics_label_each_series_with_the_redis_it_was_read_from(
    api: httpx.AsyncClient,
) -> None:
    for target in ("near.echo", "far.echo", "far.echo"):
        answer = await api.post(f"/api/v1/execute/async/{target}", json={"input": {}})
        assert answer.status_code == 202, answer.text
    scraped = await api.get("/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    depth = "agentfield_arq_queue_depth"
    assert samples[depth, (("kind", "execution"), ("redis", "0"))] == 1
    assert samples[depth, (("kind", "execution"), ("redis", "1"))] == 2
    created = "agentfield_arq_executions_created_total"
    assert samples[created, (("redis", "1"), ("target", "far.echo"))] == 2
    assert (created, (("redis", "0"), ("target", "far.echo"))) not in samples
    assert samples["agentfield_arq_nodes", (("redis", "1"), ("status", "active"))] == 1
    assert all("redis" in dict(labels) for _, labels in samples)


async def _child_of(
    api: httpx.AsyncClient, parent: str, target: str = "far.echo"
) -> httpx.Response:
    run_id = (await api.get(f"/api/v1/executions/{parent}")).json()["run_id"]
    headers = {"X-Run-ID": run_id, "X-Parent-Execution-ID": parent}
    return await api.post(f"/api/v1/execute/async/{target}", json={"input": {}}, headers=headers)


async def test_a_child_on_another_redis_than_its_cancelled_parent_is_refused_as_on_one(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    parent = (await api.post("/api/v1/execute/async/near.echo", json={"input": {}})).json()
    assert (await api.post(f"/api/v1/executions/{parent['execution_id']}/cancel")).is_success
    same = await _child_of(api, parent["execution_id"], "near.echo")
    elsewhere = await _child_of(api, parent["execution_id"])
    assert (elsewhere.status_code, elsewhere.json()) == (same.status_code, same.json())
    assert elsewhere.status_code == 409
    assert elsewhere.json()["code"] == "invalid_transition"
    keys = Keys(routed.key_prefix)
    with contextlib.closing(redis.Redis.from_url(routed.routes.urls["1"])) as shard:
        assert shard.zcard(keys.index_all) == 0


# arq 0.28's Worker.close closes its pool with redis-py's deprecated close().
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_a_parent_cancelled_before_it_started_cancels_its_children_on_another_redis(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    parent = (await api.post("/api/v1/execute/async/near.echo", json={"input": {}})).json()
    child = await _child_of(api, parent["execution_id"])
    assert child.status_code == 202, child.text
    assert (await api.post(f"/api/v1/executions/{parent['execution_id']}/cancel")).is_success
    # The home worker alone: the parent's run job (skipped) and the cascade that it queued.
    worker = create_worker(
        routed,
        burst=True,
        handle_signals=False,
        agent_transport=httpx.MockTransport(lambda request: httpx.Response(500)),
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    doc = (await api.get(f"/api/v1/executions/{child.json()['execution_id']}")).json()
    assert doc["status"] == "cancelled"
    assert parent["execution_id"] in doc["error"]


async def test_a_parent_cancelled_while_its_child_is_made_elsewhere_has_the_child_cancelled(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    made = (await api.post("/api/v1/execute/async/near.echo", json={"input": {}})).json()
    home, shard = connect(routed.redis_url, routed), connect(routed.routes.urls["1"], routed)
    try:
        parent = Parent(ExecutionStore(home, routed), made["execution_id"])
        assert await parent.check() == made["run_id"]
        # The parent's cancel (and its cascade) comes between the check and the child.
        assert (await api.post(f"/api/v1/executions/{made['execution_id']}/cancel")).is_success
        child = ExecutionStore(shard, routed, "1")
        headers = {"x-run-id": made["run_id"], "x-parent-execution-id": made["execution_id"]}
        submitted = await submit(child, "far.echo", ExecuteRequest(input={}), headers)
        await parent.adopt(child, submitted.execution_id, same_run=True)
        doc = msgspec.json.decode(await child.get_doc(submitted.execution_id) or b"{}")
    finally:
        await home.aclose()
        await shard.aclose()
    assert doc["status"] == "cancelled"
    assert made["execution_id"] in doc["error"]


async def _finished(settings: Settings, url: str, code: str, target: str, result: bytes) -> str:
    client = connect(url, settings)
    try:
        store = ExecutionStore(client, settings, code)
        made = await submit(store, target, ExecuteRequest(input={}), {})
        now = now_ms()
        await store.claim(made.execution_id, rfc3339(now), now)
        await store.finish(made.execution_id, "succeeded", rfc3339(now), now, result=result)
    finally:
        await client.aclose()
    return made.execution_id


async def test_batch_status_over_both_redis_holds_one_budget_for_the_whole_answer(
    routed: Settings, api: httpx.AsyncClient
) -> None:
    # Each result under the per-result cap; two per Redis fit one Redis's budget, four do not.
    # (`api` registered both nodes.)
    each = msgspec.json.encode({"text": "r" * 3_000})
    bounded = msgspec.structs.replace(
        routed, batch_result_max_bytes=4_000, batch_max_bytes=3 * len(each) + 1_000
    )
    ids = [
        await _finished(bounded, url, code, target, each)
        for url, code, target in [
            (bounded.redis_url, "", "near.echo"),
            (bounded.routes.urls["1"], "1", "far.echo"),
        ]
        * 2
    ]
    async with served(bounded) as client:
        answer = await client.post("/api/v1/executions/batch-status", json={"execution_ids": ids})
    found = answer.json()
    sent = [i for i in ids if "result" in found[i]]
    assert len(sent) == 3
    assert sent == ids[:3]  # in the order asked, as one Redis bounds its answer
    (cut,) = set(ids) - set(sent)
    assert found[cut]["result_truncated"] is True
    assert found[cut]["result_size"] == len(each)
    assert found[cut]["status"] == "succeeded"
