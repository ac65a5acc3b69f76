"""Compatibility, the rest of the surface: an agent written with AgentField's own SDK
(`agentfield` 0.1.144, tests/e2e/agentfield_memory_agent.py) sets, gets, lists and searches
memory, reacts to a change, writes a note, discovers targets, pauses for approval and resumes
after `agentfield-arq approve`, and restarts a failed execution, against agentfield-arq,
unmodified. Also the SSE form of the change events, read by a plain HTTP client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentfield_arq.ops.embedded import free_port
from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import start_node
from tests.e2e.test_agentfield_sdk import SDK_PYTHON, sdk_interpreter  # noqa: F401  (skips)
from tests.keys import ADMIN_KEY, bearer

pytestmark = pytest.mark.e2e
AGENT = str(Path(__file__).with_name("agentfield_memory_agent.py"))


@pytest.fixture(scope="module")
def keeper(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, a worker and the AgentField agent `keeper`."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        agent=False,
        agent_timeout_s=5,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
    ) as deployment:
        assert SDK_PYTHON is not None
        start_node(deployment, "keeper", SDK_PYTHON, AGENT, NODE_ID="keeper", PORT=str(free_port()))
        yield deployment


def test_it_sets_gets_lists_tests_and_deletes_memory_in_its_scopes(keeper: System) -> None:
    body = {"input": {"key": "user.plan", "value": {"tier": "pro"}}}
    doc = keeper.wait(keeper.submit("keeper.remember", body))
    assert doc["status"] == "succeeded", doc
    assert doc["result"] == {
        "got": {"tier": "pro"},
        "exists": True,
        "missing": "absent",
        "shared": {"tier": "pro"},
        "listed": ["user.plan"],
        "after_delete": False,
    }
    shared = keeper.http.post("/api/v1/memory/get", json={"key": "shared.user.plan"})
    assert shared.json()["scope"] == "global"


def test_its_similarity_search_ranks_its_vectors_by_cosine(keeper: System) -> None:
    doc = keeper.wait(keeper.submit("keeper.search", {"input": {"query": [1.0, 0.2]}}))
    assert doc["status"] == "succeeded", doc
    assert doc["result"]["keys"] == ["east", "ne"]
    assert doc["result"]["scores"][0] > doc["result"]["scores"][1]


def test_its_change_listener_fires_through_the_memory_event_websocket(keeper: System) -> None:
    doc = keeper.wait(keeper.submit("keeper.watch", {"input": {"pattern": "user.*"}}), 30)
    assert doc["status"] == "succeeded", doc
    assert doc["result"]["key"] == "user.ping"
    assert doc["result"]["action"] == "set"
    assert "attempt" in doc["result"]["data"]


def test_its_note_shows_on_the_execution(keeper: System) -> None:
    execution_id = keeper.submit("keeper.jot", {"input": {"message": "halfway"}})
    assert keeper.wait(execution_id)["status"] == "succeeded"

    # The SDK sends notes in the background: the note may land after the result.
    def noted() -> list[dict[str, object]]:
        found: list[dict[str, object]] = keeper.doc(execution_id).get("notes", [])
        return found

    notes = keeper.until(noted, "the note")
    assert (notes[0]["message"], notes[0]["tags"]) == ("halfway", ["e2e"])
    assert notes[0]["agent_node_id"] == "keeper"


def test_it_discovers_targets_by_tag_with_their_schemas(keeper: System) -> None:
    doc = keeper.wait(keeper.submit("keeper.find", {"input": {"tag": "memory"}}))
    assert doc["status"] == "succeeded", doc
    assert doc["result"]["agents"] == ["keeper"]
    assert doc["result"]["targets"] == ["keeper.remember", "keeper.search"]
    assert doc["result"]["schema"]["required"] == ["key", "value"]


def test_its_pause_waits_without_a_worker_and_resumes_after_the_cli_approves(
    keeper: System,
) -> None:
    execution_id = keeper.submit("keeper.review", {"input": {"request_id": "req-e2e"}})
    keeper.until(lambda: keeper.doc(execution_id)["status"] == "waiting", "the pause")
    status = keeper.http.get(f"/api/v1/agents/keeper/executions/{execution_id}/approval-status")
    assert status.json()["status"] == "pending"
    approved = subprocess.run(
        [sys.executable, "-m", "agentfield_arq", "approve", execution_id, "--feedback", "ship it"],
        env={
            **keeper.env,
            "AGENTFIELD_ARQ_PUBLIC_URL": keeper.api_url,
            "AGENTFIELD_API_KEY": ADMIN_KEY,
        },
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert approved.returncode == 0, approved.stderr
    doc = keeper.wait(execution_id)
    assert doc["status"] == "succeeded", doc
    assert doc["result"] == {"decision": "approved", "feedback": "ship it"}
    assert any("waiting for approval" in n["message"] for n in doc.get("notes", []))


def test_its_pause_rejected_fails_the_execution(keeper: System) -> None:
    execution_id = keeper.submit("keeper.review", {"input": {"request_id": "req-no"}})
    keeper.until(lambda: keeper.doc(execution_id)["status"] == "waiting", "the pause")
    rejected = keeper.http.post(
        f"/api/v1/executions/{execution_id}/reject", json={"feedback": "no"}
    )
    assert rejected.status_code == 200, rejected.text
    doc = keeper.wait(execution_id)
    assert (doc["status"], doc["error"]) == ("failed", "approval rejected: no")


def test_it_restarts_a_failed_execution_with_new_input(keeper: System) -> None:
    failed = keeper.submit("keeper.flaky", {"input": {"fail": True}})
    assert keeper.wait(failed)["status"] == "failed"
    doc = keeper.wait(keeper.submit("keeper.redo", {"input": {"execution_id": failed}}))
    assert doc["status"] == "succeeded", doc
    restarted = doc["result"]
    assert restarted["restarted_from"] == failed
    again = keeper.wait(restarted["execution_id"])
    assert (again["status"], again["result"]) == ("succeeded", {"ok": True})


def test_the_sse_form_sends_a_change_made_after_it_subscribed(keeper: System) -> None:
    url = f"{keeper.api_url}/api/v1/memory/events/sse"
    params = {"patterns": "sse.*", "max_s": "20"}
    with httpx.stream("GET", url, params=params, headers=bearer(ADMIN_KEY), timeout=30) as events:
        lines = events.iter_lines()
        assert next(lines) == ": subscribed"
        keeper.http.post("/api/v1/memory/set", json={"key": "sse.k", "data": [1, 2]})
        # Blank lines end events; comments (a keep-alive) may come between.
        fields = [line for line in lines if line and not line.startswith(":")][:2]
    assert fields[0] == "event: message"
    assert fields[1].startswith("data: ")
    event = json.loads(fields[1].removeprefix("data: "))
    assert (event["key"], event["data"], event["action"]) == ("sse.k", [1, 2], "set")


def test_the_start_up_log_has_no_memory_websocket_error(keeper: System) -> None:
    log = (keeper.logs / "keeper.log").read_text()
    assert "Failed to connect to memory events" not in log
    assert "Reconnecting to memory events" not in log
