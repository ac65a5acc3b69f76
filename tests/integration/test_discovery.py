"""Discovery over the API: the node registry in the shape AgentField's SDK reads, filtered by
the parameters its `discover_capabilities` sends."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration
URL = "/api/v1/discovery/capabilities"


async def _register(api: httpx.AsyncClient) -> None:
    record = {
        "id": "research",
        "base_url": "http://127.0.0.1:9",
        "reasoners": [
            {
                "id": "deep_research",
                "tags": ["web", "llm"],
                "description": "digs",
                "input_schema": {"type": "object"},
            },
            {"id": "summarise", "tags": ["llm"]},
        ],
        "skills": [{"id": "fetch_page", "tags": ["web"]}],
    }
    assert (await api.post("/api/v1/nodes/register", json=record)).status_code == 201


async def test_the_json_answer_lists_every_node_with_totals_and_invocation_targets(
    api: httpx.AsyncClient,
) -> None:
    await _register(api)
    body = (await api.get(URL, params={"format": "json"})).json()
    assert [c["agent_id"] for c in body["capabilities"]] == ["e2e", "research"]
    research = body["capabilities"][1]
    assert [r["invocation_target"] for r in research["reasoners"]] == [
        "research.deep_research",
        "research.summarise",
    ]
    assert research["reasoners"][0]["description"] == "digs"
    assert "input_schema" not in research["reasoners"][0]
    assert body["total_agents"] == 2
    assert body["pagination"] == {"limit": 100, "offset": 0, "has_more": False}


async def test_filters_by_reasoner_pattern_tags_and_node_and_asks_for_schemas(
    api: httpx.AsyncClient,
) -> None:
    await _register(api)
    body = (
        await api.get(URL, params={"reasoner": "*research*", "include_input_schema": "true"})
    ).json()
    assert [c["agent_id"] for c in body["capabilities"]] == ["research"]
    only = body["capabilities"][0]
    assert [r["id"] for r in only["reasoners"]] == ["deep_research"]
    assert only["skills"] == []
    assert only["reasoners"][0]["input_schema"] == {"type": "object"}
    tagged = (await api.get(URL, params={"tags": "web", "agent": "research"})).json()
    found = tagged["capabilities"][0]
    assert [r["id"] for r in found["reasoners"]] == ["deep_research"]
    assert [s["id"] for s in found["skills"]] == ["fetch_page"]


async def test_the_compact_answer_is_flat_and_pages_count_nodes(
    api: httpx.AsyncClient,
) -> None:
    await _register(api)
    compact = (await api.get(URL, params={"format": "compact", "agent": "research"})).json()
    assert [r["target"] for r in compact["reasoners"]] == [
        "research.deep_research",
        "research.summarise",
    ]
    assert compact["skills"][0] == {
        "id": "fetch_page",
        "agent_id": "research",
        "target": "research.fetch_page",
        "tags": ["web"],
    }
    paged = (await api.get(URL, params={"limit": "1"})).json()
    assert paged["pagination"]["has_more"] is True
    assert paged["total_agents"] == 2
    assert len(paged["capabilities"]) == 1


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"format": "xml"}, 501),
        ({"format": "yaml"}, 400),
        ({"limit": "0"}, 400),
        ({"include_examples": "yes"}, 400),
    ],
)
async def test_unknown_formats_and_malformed_parameters_are_refused(
    api: httpx.AsyncClient,
    params: dict[str, str],
    status: int,
) -> None:
    assert (await api.get(URL, params=params)).status_code == status
