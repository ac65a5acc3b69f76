"""The seed's orchestrator run, traced: the API, a worker and the example agents (examples/)
in this process, every hop's span kept by an in-memory exporter. The parent's trace holds the
three child executions under the agent call that made them."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import ASGIApp, Receive, Scope, Send

from agentfield_arq.api.app import create_app
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.tracing import Tracing
from agentfield_arq.sdk.agent import Agent
from agentfield_arq.workers.worker import create_worker
from tests.keys import ADMIN_KEY, bearer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(30),
    pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODES = ("orchestrator", "finance", "research", "analytics")
CHILDREN = {"finance.deep_analysis", "research.market_trends", "analytics.churn_report"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Router(httpx.AsyncBaseTransport):
    """Requests to `{name}.test` go to the ASGI app of that name, in this process."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    def add(self, name: str, app: ASGIApp) -> None:
        self.apps[f"{name}.test"] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.apps[request.url.host].handle_async_request(request)


@contextlib.contextmanager
def examples(router: Router, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Agent]]:
    """The example agents as their files define them, talking to the API through `router`."""
    original = Agent.__init__

    def routed(self: Agent, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "transport": router})

    with monkeypatch.context() as patch:
        patch.setenv("AGENTFIELD_SERVER", "http://api.test")
        # The deployment's admin key may do what an agent key does (tests/keys.py).
        patch.setenv("AGENTFIELD_API_KEY", ADMIN_KEY)
        patch.setattr(Agent, "__init__", routed)
        agents = {}
        for name in NODES:
            path = EXAMPLES / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"example_{name}", path)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            agents[name] = module.app
    yield agents


@contextlib.asynccontextmanager
async def system(settings: Settings, tracing: Tracing, router: Router) -> AsyncIterator[None]:
    """The API (its lifespan entered) and a worker, both traced, behind `router`."""
    app = create_app(settings, tracing)
    async with app.router.lifespan_context(app) as state:

        async def served(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        router.add("api", served)
        worker = create_worker(
            settings, handle_signals=False, agent_transport=router, tracing=tracing
        )
        running = asyncio.create_task(worker.main())
        try:
            yield
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await worker.close()


def _hex(span_id: int) -> str:
    return format(span_id, "016x")


async def test_the_orchestrators_trace_holds_its_three_children_under_its_agent_call(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("test"))
    router = Router()
    with examples(router, monkeypatch) as agents:
        async with (
            system(settings, tracing, router),
            httpx.AsyncClient(
                transport=router, base_url="http://api.test", headers=bearer(ADMIN_KEY)
            ) as api,
        ):
            for name, agent in agents.items():
                router.add(name, agent.asgi)
                record = {**agent.registration(), "base_url": f"http://{name}.test"}
                assert (await api.post("/api/v1/nodes/register", json=record)).status_code == 201
            answer = await api.post(
                "/api/v1/execute/async/orchestrator.generate_quarterly_report",
                json={"input": {"quarter": "Q3"}},
                headers={"traceparent": TRACEPARENT},
            )
            parent = answer.json()["execution_id"]
            done = await api.get(f"/api/v1/executions/{parent}?wait=20")
            assert done.json()["status"] == "succeeded", done.text
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    assert {s.context.trace_id for s in spans} == {int(TRACEPARENT.split("-")[1], 16)}
    by_name = {s.name: s for s in spans}
    execute = by_name["execute orchestrator.generate_quarterly_report"]
    run = by_name["run orchestrator.generate_quarterly_report"]
    call = by_name["call orchestrator.generate_quarterly_report"]
    assert execute.parent is not None
    assert _hex(execute.parent.span_id) == TRACEPARENT.split("-")[2]
    assert run.parent is not None
    assert run.parent.span_id == execute.context.span_id
    assert call.parent is not None
    assert call.parent.span_id == run.context.span_id
    children = [s for s in spans if s.name.startswith("execute ") and s is not execute]
    assert {s.name.removeprefix("execute ") for s in children} == CHILDREN
    assert all(s.parent is not None and s.parent.span_id == call.context.span_id for s in children)
    for child in CHILDREN:
        child_run = by_name[f"run {child}"]
        assert child_run.parent is not None
        assert child_run.parent.span_id == by_name[f"execute {child}"].context.span_id
    callbacks = [s for s in spans if s.name == "callback succeeded"]
    assert len(callbacks) == 4
