"""Notes (AgentField's `app.note`): stored on the execution its X-Execution-ID names, shown in
its status document and its notes route, and announced on the lifecycle stream."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.keys import NOTES_MAX, Keys
from tests.integration.test_api import _submit

pytestmark = pytest.mark.integration


def _note(message: str, tags: list[str] | None = None) -> dict[str, object]:
    # What AgentField's SDK 0.1.144 sends (tests/e2e/agentfield_wire.json).
    return {
        "message": message,
        "tags": tags or [],
        "timestamp": 1764590000.5,
        "agent_node_id": "e2e",
    }


async def test_a_note_shows_in_the_status_document_and_the_notes_route(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api)
    answer = await api.post(
        "/api/v1/executions/note",
        json=_note("  halfway there ", ["progress"]),
        headers={"X-Execution-ID": execution_id},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    assert answer.json()["note"]["message"] == "halfway there"
    doc = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert [n["message"] for n in doc["notes"]] == ["halfway there"]
    assert doc["notes"][0]["tags"] == ["progress"]
    assert doc["notes"][0]["agent_node_id"] == "e2e"
    listed = (await api.get(f"/api/v1/executions/{execution_id}/notes")).json()
    assert listed["total"] == 1
    batch = await api.post(
        "/api/v1/executions/batch-status", json={"execution_ids": [execution_id]}
    )
    assert batch.json()[execution_id]["notes"][0]["message"] == "halfway there"


async def test_a_note_appends_a_note_entry_to_the_lifecycle_stream(
    api: httpx.AsyncClient,
    redis_client: Redis,
) -> None:
    execution_id = await _submit(api)
    await api.post(
        "/api/v1/executions/note", json=_note("hello"), headers={"X-Execution-ID": execution_id}
    )
    entries = await redis_client.xrange(Keys("t").events)
    last = entries[-1][1]
    assert last[b"event"] == b"note"
    assert last[b"execution_id"] == execution_id.encode()
    assert b"status" not in last


async def test_only_the_newest_notes_are_kept(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api)
    for i in range(NOTES_MAX + 2):
        await api.post(
            "/api/v1/executions/note", json=_note(f"n{i}"), headers={"X-Execution-ID": execution_id}
        )
    listed = (await api.get(f"/api/v1/executions/{execution_id}/notes")).json()
    assert listed["total"] == NOTES_MAX
    assert listed["notes"][0]["message"] == "n2"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, _note("x"), 404),
        ({"X-Execution-ID": "exec_unknown"}, _note("x"), 404),
        ({"X-Execution-ID": "exec_unknown"}, _note(""), 400),
        ({"X-Execution-ID": "exec_unknown"}, _note("x", ["t"] * 21), 400),
    ],
)
async def test_a_note_without_its_execution_or_text_or_with_too_many_tags_is_refused(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, object],
    status: int,
) -> None:
    answer = await api.post("/api/v1/executions/note", json=body, headers=headers)
    assert answer.status_code == status, answer.text
