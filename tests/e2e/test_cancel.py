"""Cancel that reaches the agent, with real processes: an agent written with our SDK stops the
reasoner it runs when its execution is cancelled, the cancel reaches the execution's
descendants, and the agent's report after it is taken quietly.

How long the agent kept working after the cancel request is printed (`pytest -s`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import children, execution_fields, start_node
from tests.e2e.worklog import stopped_at, working

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cancelling(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, a worker and the SDK test agent (node `sdk`)."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        agent=False,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
    ) as deployment:
        start_node(deployment, "sdk")
        yield deployment


def told(system: System, execution_id: str) -> str:
    """How telling the execution's agent went, once the worker job has recorded it."""
    value = system.until(
        lambda: execution_fields(system, execution_id).get("agent_told"),
        f"the agent of {execution_id} to be told",
    )
    assert value is not None
    return value


def test_a_cancelled_reasoner_stops_working_at_once_and_the_cancel_keeps_its_reason(
    cancelling: System, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    execution_id = cancelling.submit("sdk.work", {"input": {"log": str(log)}})
    working(log)
    asked = time.time()
    answer = cancelling.http.post(
        f"/api/v1/executions/{execution_id}/cancel", json={"reason": "the user closed the tab"}
    )
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["error"]) == (
        "cancelled",
        "the user closed the tab",
    )
    assert told(cancelling, execution_id) == "cancelled"
    kept_working_s = stopped_at(log) - asked
    print(f"\ncancel of a running reasoner: the agent kept working {kept_working_s * 1000:.0f} ms")
    doc = cancelling.wait(execution_id)
    assert (doc["status"], doc["error"]) == ("cancelled", "the user closed the tab")


def test_the_agents_report_after_a_cancel_is_not_logged_as_an_error(
    cancelling: System, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    execution_id = cancelling.submit("sdk.work", {"input": {"log": str(log)}})
    working(log)
    cancelling.http.post(f"/api/v1/executions/{execution_id}/cancel")
    assert told(cancelling, execution_id) == "cancelled"
    stopped_at(log)
    agent_log = cancelling.logs / "sdk.log"
    cancelling.until(
        lambda: f"reported execution_id={execution_id}" in agent_log.read_text(),
        "the agent to report the cancel",
    )
    mine = [line for line in agent_log.read_text().splitlines() if execution_id in line]
    assert not [line for line in mine if " ERROR " in line], mine


def test_a_cancel_reaches_every_descendant_and_each_one_stops(
    cancelling: System, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    work = {"target": "sdk.work", "payload": {"log": str(log)}}
    parent = cancelling.submit("sdk.relay", {"input": {"target": "sdk.relay", "payload": work}})
    working(log)
    (child,) = (fields["execution_id"] for fields in children(cancelling, parent).values())
    (grandchild,) = (fields["execution_id"] for fields in children(cancelling, child).values())
    cancelling.http.post(f"/api/v1/executions/{parent}/cancel", json={"reason": "over budget"})
    for execution_id in (parent, child, grandchild):
        doc = cancelling.wait(execution_id)
        assert doc["status"] == "cancelled"
        assert "over budget" in doc["error"]
        assert told(cancelling, execution_id) == "cancelled"
    stopped_at(log)
