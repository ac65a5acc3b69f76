"""The demo agent process of the run command: nodes `finance`, `research` and `analytics`, with
reasoners `deep_analysis`, `market_trends` and `churn_report`, speaking the agent protocol.

Asked with an `X-Execution-ID` header it answers 202 at once and reports the result later on
the control plane's callback route, as AgentField's SDK does; without it, it answers inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentfield_arq.codec import any_decoder, now_ms, rfc3339

logger = logging.getLogger(__name__)

NODES = {"finance": "deep_analysis", "research": "market_trends", "analytics": "churn_report"}
HEARTBEAT_S = 10.0
CALLBACK_TRIES = 5


def _answer(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    quarter = payload.get("quarter", "Q1")
    figures: dict[str, dict[str, Any]] = {
        "deep_analysis": {"revenue_growth_pct": 12.4, "margin_pct": 31.0},
        "market_trends": {"trend": "AI agents adoption rising", "confidence": 0.82},
        "churn_report": {"churn_pct": 3.1, "at_risk_accounts": 17},
    }
    return {"section": name, "quarter": quarter, **figures[name]}


def create_demo_app(server_url: str, base_url: str, delay_s: float = 0.5) -> Starlette:
    """The demo agent app; registers its nodes with `server_url` when it starts."""
    tasks: set[asyncio.Task[None]] = set()
    http = httpx.AsyncClient(base_url=server_url, timeout=10.0)

    async def report(execution_id: str, name: str, payload: dict[str, Any]) -> None:
        started = now_ms()
        await asyncio.sleep(delay_s * random.uniform(0.5, 1.5))
        body = {
            "status": "succeeded",
            "result": _answer(name, payload),
            "duration_ms": now_ms() - started,
            "completed_at": rfc3339(now_ms()),
        }
        for attempt in range(CALLBACK_TRIES):
            with contextlib.suppress(httpx.HTTPError):
                answer = await http.post(f"/api/v1/executions/{execution_id}/status", json=body)
                if answer.status_code < 500:
                    return
            await asyncio.sleep(0.5 * 2**attempt)
        logger.error("callback failed execution_id=%s", execution_id)

    async def reasoner(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in NODES.values():
            return JSONResponse({"error": f"no reasoner '{name}'"}, status_code=404)
        try:
            payload = any_decoder.decode(await request.body())
        except ValueError:
            return JSONResponse({"error": "input must be a JSON object"}, status_code=422)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "input must be a JSON object"}, status_code=422)
        execution_id = request.headers.get("x-execution-id")
        if execution_id is None:
            await asyncio.sleep(delay_s)
            return JSONResponse(_answer(name, payload))
        task = asyncio.create_task(report(execution_id, name, payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse({"status": "processing", "execution_id": execution_id}, 202)

    async def register_all() -> None:
        for node_id, name in NODES.items():
            record = {"id": node_id, "base_url": base_url, "version": "1.0.0",
                      "reasoners": [{"id": name, "tags": ["demo"]}], "skills": []}  # fmt: skip
            attempt = 0
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.post("/api/v1/nodes/register", json=record)).status_code < 300:
                        break
                attempt += 1
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        logger.info("demo agent registered %s at %s", ", ".join(NODES), base_url)

    async def heartbeat_until_forgotten() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            for node_id in NODES:
                with contextlib.suppress(httpx.HTTPError):
                    answer = await http.post(f"/api/v1/nodes/{node_id}/heartbeat", json={})
                    if answer.status_code == 404:
                        return

    async def register_forever() -> None:
        while True:
            await register_all()
            await heartbeat_until_forgotten()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        registrar = asyncio.create_task(register_forever())
        try:
            yield
        finally:
            registrar.cancel()
            for task in list(tasks):
                task.cancel()
            await http.aclose()

    return Starlette(
        routes=[Route("/reasoners/{name}", reasoner, methods=["POST"])], lifespan=lifespan
    )
