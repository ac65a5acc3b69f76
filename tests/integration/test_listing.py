"""Listing and run trees over the real app and the session's Redis (no worker): the indexes the
transition scripts keep, read through the routes."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import now_ms

pytestmark = pytest.mark.integration


async def _submit(
    api: httpx.AsyncClient,
    target: str = "e2e.echo",
    headers: dict[str, str] | None = None,
) -> str:
    answer = await api.post(f"/api/v1/execute/async/{target}", json={"input": {}}, headers=headers)
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


async def _ids(api: httpx.AsyncClient, query: str) -> list[str]:
    answer = await api.get(f"/api/v1/executions?{query}")
    assert answer.status_code == 200, answer.text
    return [e["execution_id"] for e in answer.json()["executions"]]


def _newest_first(ids: list[str]) -> list[str]:
    """Ids sort by creation time (to the millisecond, then at random): the list's order."""
    return sorted(ids, reverse=True)


async def test_the_list_pages_newest_first_and_a_later_execution_never_joins_a_later_page(
    api: httpx.AsyncClient,
) -> None:
    made = _newest_first([await _submit(api) for _ in range(5)])
    first = (await api.get("/api/v1/executions?limit=2")).json()
    assert [e["execution_id"] for e in first["executions"]] == made[:2]
    await _submit(api)
    seen = [e["execution_id"] for e in first["executions"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = (await api.get(f"/api/v1/executions?limit=2&cursor={cursor}")).json()
        seen += [e["execution_id"] for e in page["executions"]]
        cursor = page["next_cursor"]
    assert seen == made


async def test_the_status_filter_follows_each_transition(
    api: httpx.AsyncClient,
) -> None:
    kept, cancelled = await _submit(api), await _submit(api)
    assert (await api.post(f"/api/v1/executions/{cancelled}/cancel")).status_code == 200
    assert await _ids(api, "status=queued") == [kept]
    assert await _ids(api, "status=cancelled") == [cancelled]
    assert await _ids(api, "status=cancelled&target=e2e.echo") == [cancelled]
    assert await _ids(api, "status=running") == []


async def test_target_node_run_and_parent_filters_each_select_their_executions(
    api: httpx.AsyncClient,
) -> None:
    parent = await _submit(api, headers={"X-Run-ID": "run-a"})
    child = await _submit(
        api, "e2e.add", headers={"X-Run-ID": "run-a", "X-Parent-Execution-ID": parent}
    )
    other = await _submit(api)
    assert await _ids(api, "target=e2e.add") == [child]
    assert await _ids(api, "node=e2e") == _newest_first([other, child, parent])
    assert await _ids(api, "run_id=run-a") == _newest_first([child, parent])
    assert await _ids(api, f"parent={parent}") == [child]
    assert await _ids(api, "node=e2e&run_id=run-a&target=e2e.echo") == [parent]


async def test_since_and_until_bound_the_creation_time(
    api: httpx.AsyncClient,
) -> None:
    before = await _submit(api)
    mark = now_ms()
    while now_ms() <= mark:  # the next millisecond is at most one away
        pass
    middle = mark + 1
    after = await _submit(api)
    assert await _ids(api, f"since={middle}") == [after]
    assert await _ids(api, f"until={middle - 1}") == [before]
    assert await _ids(api, "since=2000-01-01T00:00:00Z") == [after, before]
    assert await _ids(api, "until=2000-01-01T00:00:00%2B00:00") == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=%D9%A3", "limit"),
        ("status=done", "status"),
        ("target=nodot", "target"),
        ("node=a:b", "node"),
        ("parent=x:y", "parent"),
        ("since=yesterday", "since"),
        ("until=2026-01-01T00:00:00", "until"),
        ("cursor=a:b", "cursor"),
    ],
)
async def test_a_malformed_query_parameter_is_400_naming_it(
    api: httpx.AsyncClient,
    query: str,
    named: str,
) -> None:
    answer = await api.get(f"/api/v1/executions?{query}")
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"
    assert answer.json()["error"].startswith(f"query parameter {named}:")


async def test_an_expired_record_is_never_listed_and_leaves_the_index_it_was_read_from(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    kept, expired = await _submit(api), await _submit(api)
    keys = Keys(settings.key_prefix)
    await redis_client.delete(keys.execution(expired), keys.status_doc(expired))
    assert await _ids(api, "target=e2e.echo") == [kept]
    assert await redis_client.zscore(keys.index_target("e2e.echo"), expired) is None
    assert await redis_client.zscore(keys.index_all, expired) is None


async def test_a_run_is_a_tree_of_its_executions_with_statuses_and_timings(
    api: httpx.AsyncClient,
) -> None:
    run = {"X-Run-ID": "run-tree"}
    root = await _submit(api, headers=run)
    children = [
        await _submit(api, headers={**run, "X-Parent-Execution-ID": root}) for _ in range(3)
    ]
    grandchild = await _submit(api, headers={**run, "X-Parent-Execution-ID": children[0]})
    await api.post(f"/api/v1/executions/{children[1]}/cancel")
    answer = await api.get("/api/v1/runs/run-tree")
    assert answer.status_code == 200, answer.text
    tree = answer.json()
    assert (tree["run_id"], tree["status"], tree["count"]) == ("run-tree", "running", 5)
    (top,) = tree["roots"]
    assert top["execution_id"] == root
    assert [c["execution_id"] for c in top["children"]] == sorted(children)
    by_id = {c["execution_id"]: c for c in top["children"]}
    assert by_id[children[1]]["status"] == "cancelled"
    assert by_id[children[1]]["completed_at"] is not None
    assert [g["execution_id"] for g in by_id[children[0]]["children"]] == [grandchild]
    assert top["created_at"]
    assert top["started_at"] is None


async def test_a_run_an_execution_started_itself_has_no_index_until_another_joins_it(
    api: httpx.AsyncClient, redis_client: Redis, settings: Settings
) -> None:
    k = Keys(settings.key_prefix)
    root = await _submit(api)
    run_id = (await api.get(f"/api/v1/executions/{root}")).json()["run_id"]
    assert await redis_client.exists(k.index_run(run_id)) == 0
    assert await _ids(api, f"run_id={run_id}") == [root]
    tree = (await api.get(f"/api/v1/runs/{run_id}")).json()
    assert [r["execution_id"] for r in tree["roots"]] == [root]
    joined = [
        await _submit(api, headers={"X-Run-ID": run_id, "X-Parent-Execution-ID": root})
        for _ in range(3)
    ]
    assert await _ids(api, f"run_id={run_id}") == _newest_first([root, *joined])
    paged: list[str] = []
    cursor = ""
    while cursor is not None:
        page = (await api.get(f"/api/v1/executions?run_id={run_id}&limit=2{cursor}")).json()
        paged += [e["execution_id"] for e in page["executions"]]
        cursor = page["next_cursor"] and f"&cursor={page['next_cursor']}"
    assert paged == _newest_first([root, *joined])
    tree = (await api.get(f"/api/v1/runs/{run_id}")).json()
    assert tree["count"] == 4
    (top,) = tree["roots"]
    assert (top["execution_id"], len(top["children"])) == (root, 3)


async def test_a_run_id_naming_an_execution_of_another_run_does_not_show_it(
    api: httpx.AsyncClient,
) -> None:
    other = await _submit(api, headers={"X-Run-ID": "run-elsewhere"})
    borrowed = "run_" + other.removeprefix("exec_")
    joined = await _submit(api, headers={"X-Run-ID": borrowed})
    assert await _ids(api, f"run_id={borrowed}") == [joined]
    tree = (await api.get(f"/api/v1/runs/{borrowed}")).json()
    assert [r["execution_id"] for r in tree["roots"]] == [joined]


async def test_an_unknown_run_is_404_run_not_found(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.get("/api/v1/runs/run-nobody")
    assert answer.status_code == 404
    assert answer.json()["code"] == "run_not_found"


async def test_the_waiting_filter_follows_approvals_and_the_awaiter_status(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    approved, rejected, awaiting = [await _running(api) for _ in range(3)]
    agent = "/api/v1/agents/e2e/executions"
    for execution_id in (approved, rejected):
        asked = await api.post(f"{agent}/{execution_id}/request-approval", json=_ask(execution_id))
        assert asked.status_code == 200, asked.text
    await api.post(f"{agent}/{awaiting}/awaiter-status", json={"status": "waiting"})
    assert await _ids(api, "status=waiting") == _newest_first([approved, rejected, awaiting])
    assert await _ids(api, "status=running") == []
    await api.post(f"/api/v1/executions/{approved}/approve")
    await api.post(f"/api/v1/executions/{rejected}/reject")
    await api.post(f"{agent}/{awaiting}/awaiter-status", json={"status": "running"})
    assert await _ids(api, "status=waiting") == []
    assert await _ids(api, "status=running") == _newest_first([approved, awaiting])
    assert await _ids(api, "status=failed") == [rejected]
    index = Keys(settings.key_prefix).index_status("waiting")
    assert await redis_client.zcard(index) == 0


async def test_the_sweep_prunes_the_waiting_index_with_the_others(
    api: httpx.AsyncClient,
    redis_client: Redis,
    settings: Settings,
) -> None:
    execution_id = await _running(api)
    agent = "/api/v1/agents/e2e/executions"
    await api.post(f"{agent}/{execution_id}/awaiter-status", json={"status": "waiting"})
    keys = Keys(settings.key_prefix)
    await redis_client.delete(keys.execution(execution_id), keys.status_doc(execution_id))
    store = ExecutionStore(redis_client, settings)
    assert await store.prune_indexes(now_ms(), 100) == 1
    assert await redis_client.zcard(keys.index_status("waiting")) == 0


async def _running(api: httpx.AsyncClient) -> str:
    execution_id = await _submit(api)
    started = await api.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "running"}
    )
    assert started.status_code == 200, started.text
    return execution_id


def _ask(execution_id: str) -> dict[str, object]:
    return {
        "approval_request_id": f"req_{execution_id}",
        "approval_request_url": "https://review.example.com/req",
        "callback_url": "http://127.0.0.1:9/webhooks/approval",
        "expires_in_hours": 1,
    }
