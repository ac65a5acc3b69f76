"""Our SDK's side of memory, notes, approvals and positional `app.call`, end to end: the `sdk`
test agent (tests/e2e/sdk_agent.py) against a running control plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import start_node

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sdk(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, a worker and the `sdk` agent."""
    with deployed(
        e2e_redis, tmp_path_factory.mktemp("logs"), agent=False, worker_poll_delay_s=0.02
    ) as deployment:
        start_node(deployment, "sdk")
        yield deployment


def test_app_call_takes_positional_arguments_by_the_targets_parameter_names(sdk: System) -> None:
    doc = sdk.wait(sdk.submit("sdk.positional", {"input": {"a": 2, "b": 3}}))
    assert (doc["status"], doc["result"]) == ("succeeded", 5)


def test_app_memory_has_agentfields_scopes_and_answers(sdk: System) -> None:
    doc = sdk.wait(sdk.submit("sdk.keep", {"input": {"key": "user.x", "value": {"n": 1}}}))
    assert doc["status"] == "succeeded", doc
    assert doc["result"] == {
        "got": {"n": 1},
        "missing": "absent",
        "shared": {"n": 1},
        "listed": ["user.x"],
        "nearest": "east",
        "after_delete": False,
    }


def test_app_note_lands_on_the_execution(sdk: System) -> None:
    execution_id = sdk.submit("sdk.jot", {"input": {"message": "written"}})
    assert sdk.wait(execution_id)["status"] == "succeeded"

    def noted() -> list[dict[str, object]]:
        found: list[dict[str, object]] = sdk.doc(execution_id).get("notes", [])
        return found

    assert [n["message"] for n in sdk.until(noted, "the note")] == ["written"]


def test_app_pause_resumes_with_the_decision(sdk: System) -> None:
    execution_id = sdk.submit("sdk.review", {"input": {"request_id": "req-sdk"}})
    sdk.until(lambda: sdk.doc(execution_id)["status"] == "waiting", "the pause")
    answer = sdk.http.post(f"/api/v1/executions/{execution_id}/approve", json={"feedback": "go"})
    assert answer.status_code == 200, answer.text
    doc = sdk.wait(execution_id)
    assert (doc["status"], doc["result"]) == (
        "succeeded",
        {"decision": "approved", "feedback": "go"},
    )
