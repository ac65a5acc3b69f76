"""Who may change what: node ids belong to the agent key that first registered them, reports
need proof that they come from the execution's node, and callers see only their executions.

The attacks of issue 9, replayed through the API in this process: each forged request is
refused, changes nothing, and the legitimate party's request still lands afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import KeyStore, Role
from agentfield_arq.core.dispatch import TOKEN_HEADER, DispatchTokens
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from tests.e2e.agent_app import registration
from tests.integration.served import served
from tests.keys import ADMIN_KEY, bearer, issue

pytestmark = pytest.mark.integration

REAL = "http://127.0.0.1:9"
ROGUE = "http://127.0.0.1:7"


@dataclass
class Parties:
    """One app and the keys of everyone who talks to it."""

    api: httpx.AsyncClient
    finance: str  # the agent key that owns node `finance`
    rogue: str  # another agent key
    alice: str  # a caller
    bob: str  # another caller

    async def as_(self, key: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**kw.pop("headers", {}), **(bearer(key) if key else {})}
        return await self.api.request(method, path, headers=headers, **kw)


@contextlib.asynccontextmanager
async def parties(settings: Settings) -> AsyncIterator[Parties]:
    """The app with `finance` registered by its own agent key."""
    keys = [await issue(settings, Role.AGENT) for _ in range(2)]
    callers = [await issue(settings, Role.CALLER) for _ in range(2)]
    async with served(settings, key=None) as api:
        p = Parties(api, keys[0], keys[1], callers[0], callers[1])
        answer = await p.as_(p.finance, "POST", "/api/v1/nodes/register",
                             json=registration("finance", REAL))  # fmt: skip
        assert answer.status_code == 201, answer.text
        yield p


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[Parties]:
    async with parties(settings) as p:
        yield p


async def _node(p: Parties) -> dict[str, Any]:
    answer = await p.as_(ADMIN_KEY, "GET", "/api/v1/nodes/finance")
    record: dict[str, Any] = answer.json()
    return record


async def _submit(p: Parties, key: str) -> str:
    answer = await p.as_(key, "POST", "/api/v1/execute/async/finance.echo", json={"input": {}})
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


def _report(value: object) -> dict[str, object]:
    return {"status": "succeeded", "result": value}


# ------------------------------------------------------------------------------------ nodes


async def test_another_agent_key_cannot_take_over_a_node_and_the_record_stays(
    world: Parties,
) -> None:
    answer = await world.as_(world.rogue, "POST", "/api/v1/nodes/register",
                             json=registration("finance", ROGUE))  # fmt: skip
    assert answer.status_code == 403
    assert answer.json()["code"] == "node_owned"
    assert (await _node(world))["base_url"] == REAL


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/nodes/finance/heartbeat"),
        ("PATCH", "/api/v1/nodes/finance/status"),
        ("POST", "/api/v1/nodes/finance/shutdown"),
    ],
)
async def test_another_agent_key_cannot_beat_or_stop_a_node(
    world: Parties, method: str, path: str
) -> None:
    answer = await world.as_(world.rogue, method, path, json={"status": "offline"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "node_owned"
    assert (await _node(world))["status"] == "active"


async def test_the_owner_registers_again_and_an_admin_acts_without_taking_over(
    world: Parties,
) -> None:
    again = await world.as_(world.finance, "POST", "/api/v1/nodes/register",
                            json=registration("finance", REAL))  # fmt: skip
    assert again.status_code == 201
    beat = await world.as_(ADMIN_KEY, "POST", "/api/v1/nodes/finance/heartbeat")
    assert beat.status_code == 200
    still = await world.as_(world.rogue, "POST", "/api/v1/nodes/finance/heartbeat")
    assert still.json()["code"] == "node_owned"


async def test_revoking_the_owner_frees_its_node_ids(world: Parties, settings: Settings) -> None:
    redis = connect(settings.redis_url)
    store = KeyStore(redis, settings)
    (owner,) = [r for r in await store.list() if r.nodes == ["finance"]]
    assert await store.revoke(owner.id)
    await redis.aclose()
    answer = await world.as_(world.rogue, "POST", "/api/v1/nodes/register",
                             json=registration("finance", ROGUE))  # fmt: skip
    assert answer.status_code == 201


# -------------------------------------------------------------------------------- callbacks


async def test_a_forged_settle_is_refused_and_the_real_report_still_lands(
    world: Parties,
) -> None:
    execution_id = await _submit(world, world.alice)
    status = f"/api/v1/executions/{execution_id}/status"
    for forger in (world.rogue, world.alice, world.bob, None):
        forged = await world.as_(forger, "POST", status, json=_report({"forged": True}))
        assert forged.status_code == 404, forged.text
        assert forged.json()["code"] == "execution_not_found"
    assert (await world.as_(world.alice, "GET", f"/api/v1/executions/{execution_id}")).json()[
        "status"
    ] == "queued"
    real = await world.as_(world.finance, "POST", status, json=_report({"real": True}))
    assert real.status_code == 200, real.text
    assert real.json()["result"] == {"real": True}


async def test_the_dispatch_token_alone_proves_a_report(world: Parties, settings: Settings) -> None:
    execution_id = await _submit(world, world.alice)
    redis = connect(settings.redis_url)
    token = await DispatchTokens(redis, Keys(settings.key_prefix)).token(execution_id)
    await redis.aclose()
    status = f"/api/v1/executions/{execution_id}/status"
    wrong = await world.as_(None, "POST", status, json=_report(1),
                            headers={TOKEN_HEADER: token[:-2] + "xx"})  # fmt: skip
    assert wrong.status_code == 404
    odd = await world.as_(None, "POST", status, json=_report(1),
                          headers={TOKEN_HEADER: b"\xe9t\xe9"})  # fmt: skip
    assert odd.status_code == 404
    right = await world.as_(None, "POST", status, json=_report(2), headers={TOKEN_HEADER: token})
    assert right.status_code == 200, right.text
    assert right.json()["result"] == 2


async def test_a_token_of_one_execution_does_not_prove_another(
    world: Parties, settings: Settings
) -> None:
    first, second = await _submit(world, world.alice), await _submit(world, world.alice)
    redis = connect(settings.redis_url)
    token = await DispatchTokens(redis, Keys(settings.key_prefix)).token(first)
    await redis.aclose()
    answer = await world.as_(None, "POST", f"/api/v1/executions/{second}/status",
                             json=_report(1), headers={TOKEN_HEADER: token})  # fmt: skip
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("base_url", "listed", "taken"),
    [(REAL, True, True), (REAL, False, False), ("http://10.9.9.9:9", True, False)],
    ids=["listed-from-its-address", "not-listed", "listed-from-elsewhere"],
)
async def test_an_unproven_report_is_taken_only_for_a_listed_node_from_its_address(
    settings: Settings, base_url: str, listed: bool, taken: bool
) -> None:
    # httpx's ASGI transport presents the client as 127.0.0.1.
    settings = msgspec.structs.replace(
        settings, unproven_callback_nodes="other, classic" if listed else "other"
    )
    caller = await issue(settings, Role.CALLER)
    async with served(settings) as admin:
        # An operator registers the node; the agent itself runs without a key.
        await admin.post("/api/v1/nodes/register", json=registration("classic", base_url))
        answer = await admin.post("/api/v1/execute/async/classic.echo", json={"input": {}},
                                  headers=bearer(caller))  # fmt: skip
        execution_id = answer.json()["execution_id"]
        del admin.headers["Authorization"]
        report = await admin.post(f"/api/v1/executions/{execution_id}/status", json=_report(3))
    assert (report.status_code == 200) is taken, report.text


# ------------------------------------------------------------------------ caller isolation


async def test_another_callers_execution_answers_exactly_as_an_unknown_id(world: Parties) -> None:
    mine = await _submit(world, world.alice)
    unknown = "exec_" + "0" * len(mine[5:])
    asked = (("GET", ""), ("GET", "?wait=1"), ("GET", "/events"), ("POST", "/retry"))
    for method, suffix in (*asked, ("POST", "/cancel")):
        theirs = await world.as_(world.bob, method, f"/api/v1/executions/{mine}{suffix}")
        none = await world.as_(world.bob, method, f"/api/v1/executions/{unknown}{suffix}")
        assert theirs.status_code == none.status_code == 404
        assert theirs.content.replace(mine.encode(), unknown.encode()) == none.content
        assert dict(theirs.headers) == dict(none.headers)
    doc = await world.as_(world.alice, "GET", f"/api/v1/executions/{mine}")
    assert doc.json()["status"] == "queued"  # bob's cancel changed nothing


async def test_batch_status_answers_only_the_callers_own_executions(world: Parties) -> None:
    alices, bobs = await _submit(world, world.alice), await _submit(world, world.bob)
    ids = {"execution_ids": [alices, bobs]}
    answer = await world.as_(world.bob, "POST", "/api/v1/executions/batch-status", json=ids)
    assert answer.json()[alices] == {"execution_id": alices, "status": "not_found"}
    assert answer.json()[bobs]["status"] == "queued"
    everything = await world.as_(ADMIN_KEY, "POST", "/api/v1/executions/batch-status", json=ids)
    assert {doc["status"] for doc in everything.json().values()} == {"queued"}


async def test_a_retry_belongs_to_the_key_that_asked_for_it(world: Parties) -> None:
    mine = await _submit(world, world.alice)
    await world.as_(world.alice, "POST", f"/api/v1/executions/{mine}/cancel")
    retried = await world.as_(ADMIN_KEY, "POST", f"/api/v1/executions/{mine}/retry")
    assert retried.status_code == 202, retried.text
    admins = retried.json()["execution_id"]
    assert (await world.as_(world.alice, "GET", f"/api/v1/executions/{admins}")).status_code == 404
    again = await world.as_(world.alice, "POST", f"/api/v1/executions/{mine}/retry")
    assert again.status_code == 202, again.text
    alices = again.json()["execution_id"]
    assert (await world.as_(world.alice, "GET", f"/api/v1/executions/{alices}")).status_code == 200
    assert (await world.as_(world.bob, "GET", f"/api/v1/executions/{alices}")).status_code == 404


async def test_the_owner_and_an_admin_may_cancel(world: Parties) -> None:
    for key in (world.alice, ADMIN_KEY):
        execution_id = await _submit(world, world.alice)
        answer = await world.as_(key, "POST", f"/api/v1/executions/{execution_id}/cancel")
        assert answer.json()["status"] == "cancelled"


async def test_an_execution_records_the_id_of_the_key_that_submitted_it_not_the_key(
    world: Parties, settings: Settings
) -> None:
    execution_id = await _submit(world, world.alice)
    redis = connect(settings.redis_url)
    fields = await redis.hgetall(Keys(settings.key_prefix).execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
    records = await KeyStore(redis, settings).list()
    await redis.aclose()
    assert fields[b"owner"].decode() in {r.id for r in records if r.role is Role.CALLER}
    assert not [v for v in fields.values() if world.alice.encode() in v]


# ------------------------------------------------------------------------------ the caps


async def test_a_key_at_its_cap_of_unfinished_executions_is_429_until_one_ends(
    settings: Settings,
) -> None:
    async with parties(msgspec.structs.replace(settings, key_max_active=2)) as p:
        first = await _submit(p, p.alice)
        await _submit(p, p.alice)
        full = await p.as_(p.alice, "POST", "/api/v1/execute/async/finance.echo",
                           json={"input": {}})  # fmt: skip
        assert full.status_code == 429
        assert full.json()["code"] == "key_queue_full"
        assert int(full.headers["retry-after"]) > 0
        await _submit(p, p.bob)  # another key has its own count
        await _submit(p, ADMIN_KEY)  # an admin's is not counted
        await p.as_(p.alice, "POST", f"/api/v1/executions/{first}/cancel")
        await _submit(p, p.alice)


async def test_webhook_retries_waiting_for_their_time_do_not_fill_the_queue(
    settings: Settings,
) -> None:
    settings = msgspec.structs.replace(settings, max_queued=1)
    redis = connect(settings.redis_url)
    # A delivery retry scheduled a minute from now, as finish/record leave them in arq's queue.
    await redis.zadd(Keys(settings.key_prefix).queue, {"delivery:exec_x": 2**50})
    await redis.aclose()
    async with parties(settings) as p:
        await _submit(p, p.alice)
        full = await p.as_(p.alice, "POST", "/api/v1/execute/async/finance.echo",
                           json={"input": {}})  # fmt: skip
    assert full.status_code == 503
    assert full.json()["code"] == "queue_full"
