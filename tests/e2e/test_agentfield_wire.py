"""AgentField's SDK on the wire, replayed: the bodies `agentfield` 0.1.144 really sent (recorded
in agentfield_wire.json) are accepted by the API and do what they mean. These run without the
SDK installed; test_agentfield_sdk.py runs the SDK itself when it is available."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from agentfield_arq.core.keys import Keys
from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

WIRE: dict[str, Any] = json.loads(Path(__file__).with_name("agentfield_wire.json").read_text())
_node_ids = itertools.count(1)


def body(name: str, **changes: Any) -> dict[str, Any]:
    recorded: dict[str, Any] = copy.deepcopy(WIRE[name])
    recorded.update(changes)
    return recorded


def register(system: System) -> str:
    node_id = f"wire-{next(_node_ids)}"
    answer = system.http.post("/api/v1/nodes/register", json=body("register", id=node_id))
    assert answer.status_code == 201, answer.text
    return node_id


def test_the_sdk_registration_is_accepted_and_kept_whole(system: System) -> None:
    node_id = f"wire-{next(_node_ids)}"
    answer = system.http.post("/api/v1/nodes/register", json=body("register", id=node_id))
    assert answer.status_code == 201
    assert answer.json()["success"] is True
    assert answer.json()["resolved_base_url"] == "http://localhost:18001"
    record = system.http.get(f"/api/v1/nodes/{node_id}").json()
    assert [r["id"] for r in record["reasoners"]] == ["analyze", "orchestrate"]
    assert record["reasoners"][0]["memory_config"]["memory_retention"] == "session"
    assert record["metadata"]["deployment"]["tags"]["sdk_version"] == "0.1.144"
    assert record["communication_config"]["heartbeat_interval"] == "2s"


def test_the_sdk_heartbeat_with_its_naive_timestamp_is_accepted(system: System) -> None:
    node_id = register(system)
    answer = system.http.post(f"/api/v1/nodes/{node_id}/heartbeat", json=body("heartbeat"))
    assert answer.status_code == 200
    assert answer.json()["success"] is True
    assert system.http.get(f"/api/v1/nodes/{node_id}").json()["agent_status"] == "ready"


def test_the_sdk_shutdown_notice_marks_the_node_stopped(system: System) -> None:
    node_id = register(system)
    answer = system.http.post(f"/api/v1/nodes/{node_id}/shutdown", json=body("shutdown"))
    assert answer.status_code == 200
    record = system.http.get(f"/api/v1/nodes/{node_id}").json()
    assert (record["status"], record["agent_status"]) == ("inactive", "stopped")


def test_the_sdk_success_callback_settles_the_execution_with_its_result(system: System) -> None:
    execution_id = system.submit("e2e.late")
    report = body("callback_succeeded", execution_id=execution_id)
    answer = system.http.post(f"/api/v1/executions/{execution_id}/status", json=report)
    assert answer.status_code == 200, answer.text
    doc = system.wait(execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", report["result"])


def test_the_sdk_failure_callback_fails_the_execution_with_its_error(system: System) -> None:
    execution_id = system.submit("e2e.late")
    report = body("callback_failed", execution_id=execution_id)
    assert system.http.post(f"/api/v1/executions/{execution_id}/status", json=report).is_success
    doc = system.wait(execution_id)
    assert (doc["status"], doc["error"]) == ("failed", "boom")


def test_a_running_event_after_the_callback_changes_nothing(system: System) -> None:
    execution_id = system.submit("e2e.late")
    report = body("callback_succeeded", execution_id=execution_id)
    system.http.post(f"/api/v1/executions/{execution_id}/status", json=report)
    for name in ("event_succeeded", "event_running"):
        event = body(name, execution_id=execution_id)
        answer = system.http.post("/api/v1/workflow/executions/events", json=event)
        assert answer.json() == {"success": True}
    assert system.wait(execution_id)["status"] == "succeeded"


def test_the_sdk_execution_logs_are_recorded(system: System) -> None:
    execution_id = system.submit("e2e.late")
    answer = system.http.post(f"/api/v1/executions/{execution_id}/logs", json=body("logs"))
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    client = redis.Redis.from_url(system.redis_url, decode_responses=True)
    try:
        entries = client.xrange(Keys(system.prefix).execution_logs)
    finally:
        client.close()
    mine = [fields for _, fields in entries if fields["execution_id"] == execution_id]  # type: ignore[union-attr]
    assert len(mine) == 1
    assert json.loads(mine[0]["body"])["entries"][0]["event_type"] == "reasoner.started"
    assert system.http.get(f"/api/v1/executions/{execution_id}").json()["status"] != "succeeded"


def test_execution_logs_that_are_not_an_object_of_entries_are_refused(system: System) -> None:
    answer = system.http.post("/api/v1/executions/exec_x/logs", json=[1, 2])
    assert answer.status_code == 400


def test_did_registration_answers_501_with_a_hint(system: System) -> None:
    answer = system.http.post("/api/v1/did/register", json={"agent_node_id": "n"})
    assert answer.status_code == 501
    assert answer.json()["code"] == "not_supported"
    assert "enable_did=False" in answer.json()["error"]
