"""The deferred flow end to end: async execute, poll one, batch status, sync execute."""

from __future__ import annotations

import json

from tests.e2e.conftest import System


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


def test_an_unknown_execution_id_is_404_execution_not_found(system: System) -> None:
    answer = system.http.get("/api/v1/executions/exec_doesnotexist")
    assert answer.status_code == 404
    assert answer.json()["code"] == "execution_not_found"
    assert "exec_doesnotexist" in answer.json()["error"]


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


def test_batch_status_takes_a_thousand_ids_and_refuses_more(system: System) -> None:
    ids = [system.submit("e2e.echo") for _ in range(5)]
    asked = ids + [f"exec_unknown{i}" for i in range(995)]
    answer = system.http.post("/api/v1/executions/batch-status", json={"execution_ids": asked})
    assert answer.status_code == 200
    assert len(answer.json()) == 1000
    assert all(answer.json()[i]["execution_id"] == i for i in ids)
    too_many = system.http.post(
        "/api/v1/executions/batch-status", json={"execution_ids": [*asked, "one_more"]}
    )
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "too_many_ids"
    assert "execution_ids" in too_many.json()["error"]


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


def test_a_target_without_a_dot_is_400_invalid_target(system: System) -> None:
    answer = system.http.post("/api/v1/execute/async/e2e", json={"input": {}})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_target"


def test_an_unknown_node_or_reasoner_is_404_target_not_found(system: System) -> None:
    for target in ("nobody.echo", "e2e.nothing"):
        answer = system.http.post(f"/api/v1/execute/async/{target}", json={"input": {}})
        assert answer.status_code == 404
        assert answer.json()["code"] == "target_not_found"


def test_invalid_bodies_are_400_and_name_the_field(system: System) -> None:
    cases = [
        (b'{"inputs": {}}', "input"),
        (b'{"input": [1, 2]}', "$.input"),
        (b'{"input": {}, "context": 3}', "$.context"),
        (b"not json", "JSON"),
    ]
    for body, field in cases:
        answer = system.http.post(
            "/api/v1/execute/async/e2e.echo",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400, body
        assert answer.json()["code"] == "invalid_request"
        assert field in answer.json()["error"], answer.json()


def test_an_invalid_run_id_header_is_400_naming_the_header(system: System) -> None:
    answer = system.http.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}}, headers={"X-Run-ID": "a b"}
    )
    assert answer.status_code == 400
    assert "x-run-id" in answer.json()["error"]


def test_a_body_over_the_cap_is_413(system: System) -> None:
    big = json.dumps({"input": {"blob": "x" * 1_100_000}})
    answer = system.http.post(
        "/api/v1/execute/async/e2e.echo",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"


def test_an_unknown_route_is_a_json_404(system: System) -> None:
    answer = system.http.get("/api/v1/nope")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_health_is_200_while_redis_answers(system: System) -> None:
    answer = system.http.get("/api/v1/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_the_openapi_document_describes_the_request_bodies(system: System) -> None:
    document = system.http.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/execute/async/{target}"]["post"]
    assert "requestBody" in operation
    schema = document["components"]["schemas"]["ExecuteRequest"]
    assert "input" in schema["required"]
    assert "/api/v1/executions/batch-status" in document["paths"]
