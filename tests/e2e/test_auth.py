"""Issue 9's attacks on a running system (API, worker and the test agent, which reports with
its agent key as X-API-Key, as AgentField's SDK does): each is refused and changes nothing, and
the real agent's work still lands."""

from __future__ import annotations

import httpx
import pytest

from agentfield_arq.core.credentials import Role
from tests.e2e.agent_app import registration
from tests.e2e.conftest import System
from tests.keys import bearer

pytestmark = pytest.mark.e2e


def test_an_anonymous_request_is_401(system: System) -> None:
    answer = httpx.post(f"{system.api_url}/api/v1/execute/async/e2e.echo", json={"input": {}})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_second_agent_key_cannot_take_over_a_node_and_its_work_still_reaches_it(
    system: System,
) -> None:
    rogue = system.issue_key(Role.AGENT)
    taken = system.http.post(
        "/api/v1/nodes/register",
        json=registration("e2e", "http://127.0.0.1:7"),
        headers=bearer(rogue),
    )
    assert taken.status_code == 403
    assert taken.json()["code"] == "node_owned"
    assert system.http.get("/api/v1/nodes/e2e").json()["base_url"] == system.agent_url
    doc = system.wait(system.submit("e2e.echo", {"input": {"n": 1}}))
    assert doc["status"] == "succeeded"
    assert doc["result"]["input"] == {"n": 1}


def test_a_forged_settle_is_refused_and_the_agents_own_report_lands(system: System) -> None:
    owner = system.issue_key(Role.CALLER)
    execution_id = system.submit(
        "e2e.accept", {"input": {"delay": 1.0, "real": True}}, headers=bearer(owner)
    )
    forgers = [None, owner, system.issue_key(Role.CALLER), system.issue_key(Role.AGENT)]
    for key in forgers:
        forged = httpx.post(
            f"{system.api_url}/api/v1/executions/{execution_id}/status",
            json={"status": "succeeded", "result": {"forged": True}},
            headers=bearer(key) if key else {},
        )
        assert forged.status_code == 404, forged.text
        assert forged.json()["code"] == "execution_not_found"
    doc = system.wait(execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", {"delay": 1.0, "real": True})


def test_a_caller_cannot_read_or_cancel_another_callers_execution(system: System) -> None:
    alice, bob = system.issue_key(Role.CALLER), system.issue_key(Role.CALLER)
    execution_id = system.submit("e2e.late", headers=bearer(alice))
    url = f"/api/v1/executions/{execution_id}"
    assert system.http.get(url, headers=bearer(bob)).status_code == 404
    assert system.http.post(f"{url}/cancel", headers=bearer(bob)).status_code == 404
    assert system.http.get(url, headers=bearer(alice)).json()["status"] in ("queued", "running")
    assert system.http.post(f"{url}/cancel", headers=bearer(alice)).json()["status"] == "cancelled"
