"""An agent's life on the control plane: register with retry, heartbeat, drain, goodbye."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from agentfield_arq import Agent
from agentfield_arq.sdk import presence
from agentfield_arq.sdk.endpoint import advertised_url
from tests.unit.control_plane import FakeControlPlane

REGISTER = "/api/v1/nodes/register"
ASKED = {"X-Execution-ID": "exec_1", "X-Run-ID": "run_1"}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presence, "REGISTER_BASE_S", 0.001)


@pytest.fixture
def cp() -> FakeControlPlane:
    return FakeControlPlane()


def make_agent(cp: FakeControlPlane, **kwargs: object) -> Agent:
    options: dict[str, object] = {"callback_url": "http://agent:9000", "heartbeat_interval_s": 0.01}
    options.update(kwargs)
    return Agent("finance", "1.0.0", "http://cp", transport=cp.transport, **options)  # type: ignore[arg-type]


def running(agent: Agent) -> AbstractAsyncContextManager[None]:
    return agent.asgi.router.lifespan_context(agent.asgi)  # type: ignore[return-value]


@pytest.fixture
async def served(cp: FakeControlPlane) -> AsyncIterator[Agent]:
    agent = make_agent(cp)
    async with running(agent):
        yield agent


async def test_registration_is_retried_until_the_control_plane_takes_it(
    cp: FakeControlPlane,
) -> None:
    cp.script("POST", REGISTER, httpx.ConnectError("down"), httpx.Response(503))
    async with running(make_agent(cp)):
        await cp.until(lambda: len(cp.sent("POST", "/api/v1/nodes/finance/heartbeat")) >= 1)
    bodies = cp.bodies("POST", REGISTER)
    assert len(bodies) == 3
    assert bodies[-1]["base_url"] == "http://agent:9000"
    assert bodies[-1]["reasoners"] == []


async def test_heartbeats_follow_the_registration(served: Agent, cp: FakeControlPlane) -> None:
    await cp.until(lambda: len(cp.sent("POST", "/api/v1/nodes/finance/heartbeat")) >= 2)
    beat = cp.bodies("POST", "/api/v1/nodes/finance/heartbeat")[0]
    assert beat["status"] == "ready"
    assert beat["timestamp"].endswith("Z")


async def test_a_node_the_control_plane_forgot_registers_again(cp: FakeControlPlane) -> None:
    cp.script("POST", "/api/v1/nodes/finance/heartbeat", httpx.Response(404))
    async with running(make_agent(cp)):
        await cp.until(lambda: len(cp.sent("POST", REGISTER)) == 2)


async def test_shutdown_says_goodbye_after_registering(cp: FakeControlPlane) -> None:
    async with running(make_agent(cp)):
        await cp.until(lambda: bool(cp.sent("POST", REGISTER)))
    assert cp.bodies("POST", "/api/v1/nodes/finance/shutdown") == [{"reason": "shutdown"}]


async def test_an_agent_without_a_callback_url_neither_registers_nor_says_goodbye(
    cp: FakeControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_CALLBACK_URL", raising=False)
    agent = make_agent(cp, callback_url=None)
    async with running(agent):
        pass
    assert cp.requests == []


async def test_shutdown_lets_a_running_reasoner_finish_and_report_before_goodbye(
    cp: FakeControlPlane,
) -> None:
    agent = make_agent(cp)
    release = asyncio.Event()

    @agent.reasoner
    async def slow() -> str:
        await release.wait()
        return "done"

    transport = httpx.ASGITransport(app=agent.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://a") as http:
        lifespan = running(agent)
        await lifespan.__aenter__()
        await cp.until(lambda: bool(cp.sent("POST", REGISTER)))
        assert (await http.post("/reasoners/slow", headers=ASKED)).status_code == 202
        stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await cp.until(lambda: agent.stopping)
        assert cp.sent("POST", "/api/v1/nodes/finance/shutdown") == []
        release.set()
        await stopping
    paths = [r.url.path for r in cp.requests if "heartbeat" not in r.url.path]
    assert paths[-2:] == ["/api/v1/executions/exec_1/status", "/api/v1/nodes/finance/shutdown"]
    assert cp.bodies("POST", "/api/v1/executions/exec_1/status")[0]["result"] == "done"


async def test_a_reasoner_still_running_at_the_drain_limit_is_reported_failed(
    cp: FakeControlPlane,
) -> None:
    agent = make_agent(cp, shutdown_timeout_s=0.01)

    @agent.reasoner
    async def forever() -> None:
        await asyncio.Event().wait()

    transport = httpx.ASGITransport(app=agent.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://a") as http, running(agent):
        await http.post("/reasoners/forever", headers=ASKED)
    (report,) = cp.bodies("POST", "/api/v1/executions/exec_1/status")
    assert report["status"] == "failed"
    assert "shut down before the reasoner finished" in report["error"]


def test_the_advertised_url_is_the_bound_address_or_the_callback_url_with_the_real_port() -> None:
    assert advertised_url(None, "127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert advertised_url(None, "0.0.0.0", 8123) == "http://127.0.0.1:8123"
    assert advertised_url("http://finance", "0.0.0.0", 8001) == "http://finance:8001"
    assert advertised_url("https://agents.example/fin/", "0.0.0.0", 8001) == (
        "https://agents.example:8001/fin"
    )
    assert advertised_url("http://lb:80", "0.0.0.0", 8001) == "http://lb:80"
