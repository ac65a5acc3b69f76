"""The deferred flow end to end: async execute, poll, batch status, sync execute."""

from __future__ import annotations

from tests.e2e.conftest import System


def test_async_execute_answers_202_with_ids_and_the_agent_result_arrives(system: System) -> None:
    answer = system.http.post("/api/v1/execute/async/e2e.echo", json={"input": {"quarter": "Q3"}})
    assert answer.status_code == 202
    body = answer.json()
    assert body["execution_id"].startswith("exec_")
    assert body["run_id"].startswith("run_")
    assert body["workflow_id"] == body["run_id"]
    assert body["status"] == "queued"
    assert body["type"] == "reasoner"
    assert answer.headers["X-Execution-ID"] == body["execution_id"]
    doc = system.wait(body["execution_id"])
    assert doc["status"] == "succeeded"
    assert doc["result"]["input"] == {"quarter": "Q3"}
