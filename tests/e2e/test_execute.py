"""The deferred flow end to end: async execute, poll one, batch status, sync execute. Checks
that need no worker or agent are in tests/integration/test_api.py."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e


def test_async_execute_answers_202_with_ids_and_the_agent_result_arrives(system: System) -> None:
    answer = system.http.post("/api/v1/execute/async/e2e.echo", json={"input": {"quarter": "Q3"}})
    assert answer.status_code == 202
    body = answer.json()
    assert body["execution_id"].startswith("exec_")
    assert body["run_id"].startswith("run_")
    assert body["workflow_id"] == body["run_id"]
    assert body["status"] == "queued"
    assert body["target"] == "e2e.echo"
    assert body["type"] == "reasoner"
    assert body["webhook_registered"] is False
    assert body["created_at"].endswith("Z")
    assert body["enqueued_at"].endswith("Z")
    assert answer.headers["X-Execution-ID"] == body["execution_id"]
    assert answer.headers["X-Run-ID"] == body["run_id"]
    doc = system.wait(body["execution_id"])
    assert doc["status"] == "succeeded"
    assert doc["result"]["input"] == {"quarter": "Q3"}


def test_get_one_has_the_contract_fields_of_a_finished_execution(system: System) -> None:
    execution_id = system.submit("e2e.echo")
    doc = system.wait(execution_id)
    for field in ("execution_id", "run_id", "status", "result", "started_at", "completed_at",
                  "duration_ms", "webhook_registered", "target", "type", "created_at"):  # fmt: skip
        assert field in doc, field
    assert isinstance(doc["duration_ms"], int)


def test_run_and_context_headers_are_kept_and_forwarded_to_the_agent(system: System) -> None:
    headers = {
        "X-Run-ID": "run_parent",
        "X-Parent-Execution-ID": "exec_parent",
        "X-Session-ID": "sess-1",
        "X-Actor-ID": "ada@example.com",
    }
    answer = system.http.post("/api/v1/execute/async/e2e.echo", json={"input": {}}, headers=headers)
    assert answer.json()["run_id"] == "run_parent"
    seen = system.wait(answer.json()["execution_id"])["result"]["headers"]
    assert seen["x-run-id"] == "run_parent"
    assert seen["x-parent-execution-id"] == "exec_parent"
    assert seen["x-session-id"] == "sess-1"
    assert seen["x-actor-id"] == "ada@example.com"
    assert seen["x-execution-id"] == answer.json()["execution_id"]


def test_an_invalid_webhook_does_not_reject_the_execution(system: System) -> None:
    answer = system.http.post(
        "/api/v1/execute/async/e2e.echo",
        json={"input": {}, "webhook": {"url": "ftp://example.com/hook"}},
    )
    assert answer.status_code == 202
    assert answer.json()["webhook_registered"] is False
    assert "webhook.url" in answer.json()["webhook_error"]
    assert system.wait(answer.json()["execution_id"])["status"] == "succeeded"


def test_a_skill_is_invoked_on_its_own_route(system: System) -> None:
    answer = system.http.post("/api/v1/execute/async/e2e.add", json={"input": {"a": 2, "b": 3}})
    assert answer.json()["type"] == "skill"
    assert system.wait(answer.json()["execution_id"])["result"] == {"sum": 5}


def test_batch_status_answers_each_id_and_not_found_for_unknown_ones(system: System) -> None:
    ids = [system.submit("e2e.echo") for _ in range(3)]
    for execution_id in ids:
        system.wait(execution_id)
    answer = system.http.post(
        "/api/v1/executions/batch-status", json={"execution_ids": [*ids, "exec_missing"]}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [body[i]["status"] for i in ids] == ["succeeded"] * 3
    assert body["exec_missing"] == {"execution_id": "exec_missing", "status": "not_found"}
    assert body[ids[0]] == system.http.get(f"/api/v1/executions/{ids[0]}").json()


def test_sync_execute_waits_and_answers_the_terminal_state(system: System) -> None:
    answer = system.http.post("/api/v1/execute/e2e.accept", json={"input": {"delay": 0.2}})
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "succeeded"
    assert body["result"] == {"delay": 0.2}
    assert isinstance(body["duration_ms"], int)
    assert body["finished_at"].endswith("Z")
    assert answer.headers["X-Execution-ID"] == body["execution_id"]


def test_sync_execute_reports_a_failure_with_error_message(system: System) -> None:
    answer = system.http.post("/api/v1/execute/e2e.reject", json={"input": {}})
    assert answer.status_code == 200
    assert answer.json()["status"] == "failed"
    assert "422" in answer.json()["error_message"]
    assert "result" not in answer.json()


def test_sync_execute_at_its_limit_answers_504_with_the_id_and_the_work_carries_on(
    system: System,
) -> None:
    answer = system.http.post("/api/v1/execute/e2e.accept", json={"input": {"delay": 4}})
    assert answer.status_code == 504
    assert answer.json()["code"] == "sync_timeout"
    execution_id = answer.json()["execution_id"]
    assert answer.headers["X-Execution-ID"] == execution_id
    assert system.wait(execution_id)["status"] == "succeeded"
