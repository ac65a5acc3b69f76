"""The agent's cancel route, as AgentField's SDK serves it: the running task is cancelled, its
end reported once as `cancelled`; a report refused because of a cancel is information."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentfield_arq import Agent
from tests.unit.control_plane import FakeControlPlane

ASKED = {"X-Execution-ID": "exec_1", "X-Run-ID": "run_1"}
CANCEL = "/_internal/executions/exec_1/cancel"
STATUS = "/api/v1/executions/exec_1/status"


class Blocking:
    """A reasoner's body that waits until released, recording whether it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def run(self) -> str:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "done"


@pytest.fixture
def cp() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def body() -> Blocking:
    return Blocking()


@pytest.fixture
def agent(cp: FakeControlPlane, body: Blocking) -> Agent:
    app = Agent("n", server_url="http://cp", transport=cp.transport)

    @app.reasoner
    async def wait() -> str:
        return await body.run()

    @app.skill
    async def hold() -> str:
        return await body.run()

    return app


@pytest.fixture
async def http(agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=agent.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        yield client


def reports(cp: FakeControlPlane) -> list[dict[str, Any]]:
    return cp.bodies("POST", STATUS)


async def test_a_cancel_stops_the_running_reasoner_and_its_end_is_reported_cancelled(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent, body: Blocking
) -> None:
    await http.post("/reasoners/wait", headers=ASKED)
    await body.started.wait()
    answer = await http.post(CANCEL, json={"reason": "user asked"})
    assert (answer.status_code, answer.json()) == (
        200,
        {"cancelled": True, "execution_id": "exec_1"},
    )
    await cp.until(lambda: agent.reporter.in_flight == 0)
    assert body.cancelled
    (report,) = reports(cp)
    assert (report["status"], report["error"]) == ("cancelled", "cancelled by the control plane")
    assert len(cp.sent("POST", STATUS)) == 1


async def test_a_cancel_for_nothing_running_here_answers_as_agentfield_does(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post(CANCEL)
    assert answer.status_code == 200
    assert answer.json() == {
        "cancelled": False,
        "execution_id": "exec_1",
        "reason": "execution_not_active",
    }


async def test_an_inline_invocation_naming_its_execution_is_cancelled_with_a_499(
    http: httpx.AsyncClient, body: Blocking
) -> None:
    inline = asyncio.create_task(http.post("/skills/hold", headers=ASKED))
    await body.started.wait()
    answer = await http.post(CANCEL)
    assert answer.json()["cancelled"] is True
    done = await inline
    assert done.status_code == 499
    assert done.json() == {
        "status": "cancelled",
        "reason": "cancelled_by_control_plane",
        "execution_id": "exec_1",
    }
    assert body.cancelled


async def test_the_drain_still_reports_a_shutdown_not_a_cancel(
    http: httpx.AsyncClient, cp: FakeControlPlane, agent: Agent, body: Blocking
) -> None:
    await http.post("/reasoners/wait", headers=ASKED)
    await body.started.wait()
    await agent.reporter.drain(0.01)
    (report,) = reports(cp)
    assert report["status"] == "failed"
    assert report["error"] == "the agent shut down before the reasoner finished"


async def test_a_report_refused_because_the_execution_was_cancelled_is_logged_as_information(
    http: httpx.AsyncClient,
    cp: FakeControlPlane,
    agent: Agent,
    body: Blocking,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = {"error": "...", "code": "invalid_transition", "status": "cancelled"}
    cp.script("POST", STATUS, httpx.Response(409, json=refusal))
    await http.post("/reasoners/wait", headers=ASKED)
    body.release.set()
    with caplog.at_level(logging.INFO, logger="agentfield_arq.sdk.reporter"):
        await cp.until(lambda: agent.reporter.in_flight == 0)
    (record,) = [r for r in caplog.records if "exec_1" in r.getMessage() and "report" in r.msg]
    assert record.levelno == logging.INFO
    assert "was cancelled meanwhile" in record.getMessage()


async def test_any_other_refused_report_is_still_an_error(
    http: httpx.AsyncClient,
    cp: FakeControlPlane,
    agent: Agent,
    body: Blocking,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = {"error": "...", "code": "invalid_transition", "status": "succeeded"}
    cp.script("POST", STATUS, httpx.Response(409, json=refusal))
    await http.post("/reasoners/wait", headers=ASKED)
    body.release.set()
    with caplog.at_level(logging.INFO, logger="agentfield_arq.sdk.reporter"):
        await cp.until(lambda: agent.reporter.in_flight == 0)
    assert [r.levelno for r in caplog.records if "refused" in r.getMessage()] == [logging.ERROR]
