"""How the worker treats each kind of agent answer (2xx, 202 + callback, 4xx, 5xx, timeout)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e


def test_a_2xx_answer_is_the_result(system: System) -> None:
    doc = system.wait(system.submit("e2e.echo", {"input": {"n": 1}}))
    assert doc["status"] == "succeeded"
    assert doc["result"]["input"] == {"n": 1}


def test_any_json_value_is_a_result_including_null_and_lists(system: System) -> None:
    assert system.wait(system.submit("e2e.none"))["result"] is None
    assert system.wait(system.submit("e2e.listing"))["result"] == [1, "two", None]


def test_a_body_that_is_not_json_becomes_a_string_result(system: System) -> None:
    assert system.wait(system.submit("e2e.text"))["result"] == "plain words"


def test_a_202_keeps_the_execution_running_until_the_callback(system: System) -> None:
    execution_id = system.submit("e2e.accept", {"input": {"delay": 0.3}})
    doc = system.wait(execution_id)
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"delay": 0.3}
    assert system.agent_calls(execution_id)["calls"] == 1


def test_a_failed_callback_fails_the_execution_with_its_error(system: System) -> None:
    doc = system.wait(system.submit("e2e.accept_fail"))
    assert doc["status"] == "failed"
    assert doc["error"] == "model refused"
    assert "result" not in doc


def test_a_4xx_fails_at_once_with_the_status_and_body_and_is_not_retried(system: System) -> None:
    execution_id = system.submit("e2e.reject")
    doc = system.wait(execution_id)
    assert doc["status"] == "failed"
    assert "422" in doc["error"]
    assert "quarter is required" in doc["error"]
    assert system.agent_calls(execution_id)["calls"] == 1


def test_a_500_fails_at_once_since_the_agent_may_have_run_it(system: System) -> None:
    execution_id = system.submit("e2e.boom")
    doc = system.wait(execution_id)
    assert doc["status"] == "failed"
    assert "500: internal trouble" in doc["error"]
    assert system.agent_calls(execution_id)["calls"] == 1


def test_a_transient_failure_is_retried_until_it_succeeds(system: System) -> None:
    execution_id = system.submit("e2e.flaky", {"input": {"fail": 2}})
    doc = system.wait(execution_id)
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"calls": 3}


def test_an_agent_that_never_answers_is_timed_out_and_not_called_again(system: System) -> None:
    execution_id = system.submit("e2e.hang")
    doc = system.wait(execution_id, timeout_s=30)
    assert doc["status"] == "failed"
    assert "timed out" in doc["error"]
    assert system.agent_calls(execution_id)["calls"] == 1


def test_a_repeated_identical_callback_is_a_no_op(system: System) -> None:
    execution_id = system.submit("e2e.accept", {"input": {"delay": 0}})
    first = system.wait(execution_id)
    again = system.http.post(
        f"/api/v1/executions/{execution_id}/status",
        json={"status": "completed", "result": {"delay": 0}},
    )
    assert again.status_code == 200
    assert again.json() == first


def test_a_different_callback_on_a_terminal_execution_is_409(system: System) -> None:
    execution_id = system.submit("e2e.echo")
    system.wait(execution_id)
    answer = system.http.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "failed", "error": "x"}
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "invalid_transition"
    assert system.http.get(f"/api/v1/executions/{execution_id}").json()["status"] == "succeeded"


def test_a_callback_for_an_unknown_execution_is_404(system: System) -> None:
    answer = system.http.post(
        "/api/v1/executions/exec_unknown/status", json={"status": "succeeded", "result": 1}
    )
    assert answer.status_code == 404
    assert answer.json()["code"] == "execution_not_found"


def test_a_callback_with_an_unknown_status_word_is_400(system: System) -> None:
    execution_id = system.submit("e2e.late")
    answer = system.http.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "exploded"}
    )
    assert answer.status_code == 400
    assert "status" in answer.json()["error"]


def test_a_callback_result_may_be_any_json_value(system: System) -> None:
    execution_id = system.submit("e2e.late")
    answer = system.http.post(
        f"/api/v1/executions/{execution_id}/status",
        json={"status": "success", "result": "just text", "duration_ms": 1234},
    )
    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"
    assert answer.json()["result"] == "just text"
    assert answer.json()["duration_ms"] == 1234


def test_telemetry_is_accepted_but_never_finalises_an_execution(system: System) -> None:
    execution_id = system.submit("e2e.late")
    answer = system.http.post(
        "/api/v1/workflow/executions/events",
        json={"execution_id": execution_id, "status": "succeeded", "result": {"x": 1}},
    )
    assert answer.status_code == 200
    assert answer.json() == {"success": True}
    assert system.http.get(f"/api/v1/executions/{execution_id}").json()["status"] in {
        "queued",
        "running",
    }


def test_cancel_ends_a_running_execution_and_the_agent_outcome_is_discarded(
    system: System,
) -> None:
    execution_id = system.submit("e2e.slow", {"input": {"s": 0.5}})
    system.agent_calls(execution_id, within_s=10, in_flight=1)
    answer = system.http.post(f"/api/v1/executions/{execution_id}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert system.http.post(f"/api/v1/executions/{execution_id}/cancel").status_code == 200
    system.agent_calls(execution_id, within_s=10, calls=1, peak=1, in_flight=0)
    assert system.http.get(f"/api/v1/executions/{execution_id}").json()["status"] == "cancelled"


def test_cancel_of_a_finished_execution_is_409(system: System) -> None:
    execution_id = system.submit("e2e.echo")
    system.wait(execution_id)
    answer = system.http.post(f"/api/v1/executions/{execution_id}/cancel")
    assert answer.status_code == 409
    assert answer.json()["code"] == "invalid_transition"


def test_the_callback_answers_like_get_including_the_webhook_delivery(system: System) -> None:
    execution_id = system.submit(
        "e2e.late", {"input": {}, "webhook": {"url": "http://127.0.0.1:9/hook"}}
    )
    answer = system.http.post(
        f"/api/v1/executions/{execution_id}/status", json={"status": "succeeded", "result": 1}
    )
    assert answer.status_code == 200
    assert answer.json()["result"] == 1
    assert "webhook_status" in answer.json()
