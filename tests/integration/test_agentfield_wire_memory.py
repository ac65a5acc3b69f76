"""AgentField's SDK on the wire, replayed for the rest of its surface: the requests
`agentfield` 0.1.144 really sent for memory, notes, discovery, restart and approvals (recorded in
tests/e2e/agentfield_memory_wire.json, with headers) get the answers it reads. These need no
SDK; tests/e2e/test_agentfield_memory.py runs the SDK itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

WIRE: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "e2e" / "agentfield_memory_wire.json").read_text()
)
IDS = {"{run_id}": "run_wire", "{port}": "18001"}


async def replay(
    api: httpx.AsyncClient,
    name: str,
    **ids: str,
) -> httpx.Response:
    """Send the recorded request `name`, its placeholders filled in."""
    text = json.dumps(WIRE[name])
    for placeholder, value in {**IDS, **{f"{{{k}}}": v for k, v in ids.items()}}.items():
        text = text.replace(placeholder, value)
    recorded = json.loads(text)
    return await api.request(
        recorded["method"],
        recorded["path"] + (f"?{recorded['query']}" if recorded["query"] else ""),
        headers=recorded["headers"],
        content=None if recorded.get("body") is None else json.dumps(recorded["body"]),
    )


async def test_its_memory_calls_get_the_answers_it_reads(api: httpx.AsyncClient) -> None:
    ids = {"execution_id": "exec_wire"}
    assert (await replay(api, "memory_set", **ids)).status_code == 200
    got = await replay(api, "memory_get", **ids)
    assert got.json()["data"] == {"tier": "pro"}  # what MemoryClient.get reads
    assert got.json()["scope"] == "workflow"
    assert (await replay(api, "memory_get_3", **ids)).status_code == 404  # `default`
    assert (await replay(api, "memory_set_2", **ids)).json()["scope"] == "global"
    assert (await replay(api, "memory_get_4", **ids)).json()["data"] == {"tier": "pro"}
    listed = (await replay(api, "memory_list", **ids)).json()
    assert [item["key"] for item in listed] == ["user.plan"]  # what list_keys reads
    assert (await replay(api, "memory_delete", **ids)).status_code == 204
    assert (await replay(api, "memory_get_5", **ids)).status_code == 404


async def test_its_vector_calls_store_and_rank(api: httpx.AsyncClient) -> None:
    for name in ("vector_set", "vector_set_2", "vector_set_3"):
        assert (await replay(api, name, execution_id="exec_wire")).status_code == 200
    hits = (await replay(api, "vector_search", execution_id="exec_wire")).json()
    assert [h["key"] for h in hits] == ["east", "ne"]


async def test_its_note_lands_on_the_execution_its_header_names(
    api: httpx.AsyncClient,
) -> None:
    execution_id = (await api.post("/api/v1/execute/async/e2e.echo", json={"input": {}})).json()[
        "execution_id"
    ]
    assert (await replay(api, "note", execution_id=execution_id)).status_code == 200
    doc = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert doc["notes"][0]["message"] == "halfway"


async def test_its_discovery_query_is_understood(api: httpx.AsyncClient) -> None:
    answer = await replay(api, "discover")
    assert answer.status_code == 200
    assert answer.json()["pagination"]["limit"] == 100


async def test_its_restart_and_approval_requests_are_served(api: httpx.AsyncClient) -> None:
    node = {"id": "keeper", "base_url": "http://localhost:18001", "reasoners": [{"id": "review"}]}
    assert (await api.post("/api/v1/nodes/register", json=node)).status_code == 201
    ended = (await api.post("/api/v1/execute/async/keeper.review", json={"input": {}})).json()
    await api.post(f"/api/v1/executions/{ended['execution_id']}/cancel")
    restarted = await replay(api, "restart", execution_id=ended["execution_id"])
    assert restarted.status_code == 202, restarted.text
    waiting = restarted.json()["execution_id"]
    await api.post(f"/api/v1/executions/{waiting}/status", json={"status": "running"})
    asked = await replay(api, "request_approval", execution_id=waiting)
    assert asked.status_code == 200, asked.text
    assert asked.json()["approval_request_id"] == "req-1"  # what request_approval reads
    assert (await api.get(f"/api/v1/executions/{waiting}")).json()["status"] == "waiting"
