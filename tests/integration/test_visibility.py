"""What a key sees of other keys' executions where it lists, draws runs and follows events:
nothing. A caller's or agent's key sees the executions it submitted, an admin's every one; a
page, its cursor, a run's tree and its count, and a stream's events (live or resumed) hold no
other key's execution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from agentfield_arq.core.settings import Settings
from tests.integration.test_events import opened
from tests.integration.test_ownership import Parties, _submit, parties
from tests.keys import ADMIN_KEY, bearer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[Parties]:
    async with parties(settings) as p:
        yield p


async def _listed(p: Parties, key: str, query: str = "") -> list[str]:
    answer = await p.as_(key, "GET", f"/api/v1/executions?{query}")
    assert answer.status_code == 200, answer.text
    return [e["execution_id"] for e in answer.json()["executions"]]


async def _in_run(p: Parties, key: str, headers: dict[str, str]) -> str:
    answer = await p.as_(
        key, "POST", "/api/v1/execute/async/finance.echo", json={"input": {}}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


def _ids(node: dict[str, Any]) -> list[str]:
    return [node["execution_id"], *(i for c in node["children"] for i in _ids(c))]


async def test_a_list_shows_a_key_its_own_executions_and_an_admin_every_one(
    world: Parties,
) -> None:
    alices = sorted([await _submit(world, world.alice) for _ in range(3)], reverse=True)
    bobs = sorted([await _submit(world, world.bob) for _ in range(2)], reverse=True)
    assert await _listed(world, world.alice) == alices
    assert await _listed(world, world.bob) == bobs
    assert await _listed(world, world.alice, "status=queued&target=finance.echo") == alices
    assert await _listed(world, world.bob, f"parent={alices[0]}") == []
    assert sorted(await _listed(world, ADMIN_KEY)) == sorted(alices + bobs)


async def test_a_keys_pages_and_cursors_never_name_another_keys_execution(
    world: Parties,
) -> None:
    mine = []
    for _ in range(3):
        mine.append(await _submit(world, world.alice))
        await _submit(world, world.bob)
    seen: list[str] = []
    cursors: list[str] = []
    query = "limit=1"
    while True:
        page = (await world.as_(world.alice, "GET", f"/api/v1/executions?{query}")).json()
        seen += [e["execution_id"] for e in page["executions"]]
        if page["next_cursor"] is None:
            break
        cursors.append(page["next_cursor"])
        query = f"limit=1&cursor={page['next_cursor']}"
    assert seen == sorted(mine, reverse=True)
    assert set(cursors) <= set(mine)


async def test_a_run_shows_a_key_only_its_own_executions_in_it(world: Parties) -> None:
    run = {"X-Run-ID": "shared"}
    root = await _in_run(world, world.alice, run)
    child = await _in_run(world, world.alice, {**run, "X-Parent-Execution-ID": root})
    bobs = await _in_run(world, world.bob, {**run, "X-Parent-Execution-ID": root})
    alices_run = (await world.as_(world.alice, "GET", "/api/v1/runs/shared")).json()
    assert (alices_run["count"], alices_run["truncated"]) == (2, False)
    assert [_ids(r) for r in alices_run["roots"]] == [[root, child]]
    bobs_run = (await world.as_(world.bob, "GET", "/api/v1/runs/shared")).json()
    assert bobs_run["count"] == 1
    assert [_ids(r) for r in bobs_run["roots"]] == [[bobs]]  # its parent is not bob's to see
    everything = (await world.as_(ADMIN_KEY, "GET", "/api/v1/runs/shared")).json()
    assert everything["count"] == 3


async def test_a_run_of_another_keys_executions_only_is_not_found(world: Parties) -> None:
    await _in_run(world, world.bob, {"X-Run-ID": "bobs"})
    theirs = await world.as_(world.alice, "GET", "/api/v1/runs/bobs")
    unknown = await world.as_(world.alice, "GET", "/api/v1/runs/nobodys")
    assert (theirs.status_code, theirs.json()["code"]) == (404, "run_not_found")
    assert theirs.json()["error"].replace("bobs", "nobodys") == unknown.json()["error"]


async def test_a_keys_event_stream_carries_its_own_executions_only(world: Parties) -> None:
    async with (
        opened(world.api, "/api/v1/events", bearer(world.alice)) as alices,
        opened(world.api, "/api/v1/events", bearer(ADMIN_KEY)) as admins,
    ):
        await alices.until(comments=1)
        await admins.until(comments=1)
        bobs = await _submit(world, world.bob)
        mine = await _submit(world, world.alice)
        await admins.until(frames=2)
        await alices.until(frames=1)
    seen = [msgspec.json.decode(f["data"])["execution_id"] for f in alices.frames]
    assert seen == [mine]
    assert all("owner" not in msgspec.json.decode(f["data"]) for f in alices.frames)
    assert {msgspec.json.decode(f["data"])["execution_id"] for f in admins.frames} == {bobs, mine}


async def test_a_resumed_stream_replays_none_of_another_keys_executions(world: Parties) -> None:
    async with opened(world.api, "/api/v1/events", bearer(world.alice)) as first:
        await first.until(comments=1)
        before = await _submit(world, world.alice)
        await first.until(frames=1)
    await _submit(world, world.bob)
    after = await _submit(world, world.alice)
    resume = {**bearer(world.alice), "Last-Event-ID": first.frames[0]["id"]}
    async with opened(world.api, "/api/v1/events", resume) as second:
        await second.until(frames=1)
        await world.as_(world.bob, "POST", "/api/v1/execute/async/finance.echo", json={})
        await world.as_(world.alice, "POST", f"/api/v1/executions/{after}/cancel")
        await second.until(frames=2)
    seen = [(msgspec.json.decode(f["data"])["execution_id"], f["event"]) for f in second.frames]
    assert seen == [(after, "queued"), (after, "cancelled")]
    assert before not in {e for e, _ in seen}
