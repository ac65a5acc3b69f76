"""The node registry routes, with AgentField's record shape."""

from __future__ import annotations

import pytest

from tests.e2e.agent_app import registration
from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e


def test_register_answers_201_and_keeps_unknown_fields(system: System) -> None:
    record = registration("keeper", "http://127.0.0.1:9/")
    record["callback_discovery"] = {"mode": "auto"}
    answer = system.http.post("/api/v1/nodes/register", json=record)
    assert answer.status_code == 201
    assert answer.json() == {
        "success": True,
        "message": "node 'keeper' registered",
        "node_id": "keeper",
        "resolved_base_url": "http://127.0.0.1:9",
    }
    node = system.http.get("/api/v1/nodes/keeper").json()
    assert node["team_id"] == "e2e"
    assert node["metadata"] == {"purpose": "tests"}
    assert node["callback_discovery"] == {"mode": "auto"}
    assert node["status"] == "active"


def test_post_nodes_is_an_alias_of_register(system: System) -> None:
    answer = system.http.post("/api/v1/nodes", json=registration("alias", "http://127.0.0.1:9"))
    assert answer.status_code == 201


def test_an_invalid_registration_is_400_naming_the_field(system: System) -> None:
    answer = system.http.post("/api/v1/nodes/register", json={"id": "x"})
    assert answer.status_code == 400
    assert "base_url" in answer.json()["error"]
    bad_url = system.http.post("/api/v1/nodes/register", json={"id": "x", "base_url": "nope"})
    assert bad_url.status_code == 400
    assert "base_url" in bad_url.json()["error"]


def test_list_shows_registered_nodes(system: System) -> None:
    listing = system.http.get("/api/v1/nodes").json()
    assert "e2e" in {n["id"] for n in listing["nodes"]}
    assert listing["count"] == len(listing["nodes"])


def test_heartbeat_answers_the_contract_shape_with_or_without_a_body(system: System) -> None:
    for kwargs in ({}, {"json": {"status": "ready", "timestamp": "2026-01-01T00:00:00Z"}}):
        answer = system.http.post("/api/v1/nodes/e2e/heartbeat", **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 200
        assert answer.json()["success"] is True
        assert answer.json()["message"] == "heartbeat received"
        assert answer.json()["timestamp"].endswith("Z")


def test_heartbeat_of_an_unknown_node_is_404(system: System) -> None:
    answer = system.http.post("/api/v1/nodes/ghost/heartbeat", json={})
    assert answer.status_code == 404
    assert answer.json()["code"] == "node_not_found"


def test_a_node_that_says_goodbye_is_reported_inactive(system: System) -> None:
    system.http.post("/api/v1/nodes/register", json=registration("leaver", "http://127.0.0.1:9"))
    answer = system.http.post("/api/v1/nodes/leaver/shutdown", json={"reason": "signal"})
    assert answer.status_code == 200
    assert system.http.get("/api/v1/nodes/leaver").json()["status"] == "inactive"


def test_an_unknown_node_is_404_node_not_found(system: System) -> None:
    answer = system.http.get("/api/v1/nodes/ghost")
    assert answer.status_code == 404
    assert answer.json()["code"] == "node_not_found"
