"""A programmable agent for end-to-end tests, run as its own process on 127.0.0.1.

Each reasoner shows one behaviour of the agent protocol; `GET /calls/{execution_id}` tells
how often an execution was invoked and the most invocations that were in flight at once, and
with counts in its query (`?in_flight=1&wait_s=10`) answers once they are reached (408 after
`wait_s`), so that tests wait for the agent's event instead of asking again and again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections import Counter
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REASONERS = ["echo", "none", "listing", "accept", "accept_fail", "late", "reject", "boom",
             "flaky", "hang", "slow", "block", "text"]  # fmt: skip
SKILLS = ["add"]
COUNTS = ("calls", "peak", "in_flight")


def create_app(api_url: str, lose_callbacks: bool = False) -> Starlette:
    """The test agent; `api_url` is where it sends callbacks, unless it `lose_callbacks`, as
    an agent that dies before reporting would."""
    calls: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    watchers: set[asyncio.Event] = set()

    def counted() -> None:
        for watcher in watchers:
            watcher.set()

    async def callback(execution_id: str, body: dict[str, Any], delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        # As AgentField's SDK does: the agent's key, from $AGENTFIELD_API_KEY, as X-API-Key.
        key = os.environ.get("AGENTFIELD_API_KEY")
        async with httpx.AsyncClient(headers={"X-API-Key": key} if key else {}) as http:
            await http.post(f"{api_url}/api/v1/executions/{execution_id}/status", json=body)

    def later(execution_id: str, body: dict[str, Any], delay_s: float) -> None:
        if lose_callbacks:
            return
        task = asyncio.create_task(callback(execution_id, body, delay_s))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def reasoner(request: Request) -> Response:
        name = request.path_params["name"]
        body: dict[str, Any] = await request.json()
        execution_id = request.headers.get("x-execution-id", "")
        calls[execution_id] += 1
        in_flight[execution_id] += 1
        peak[execution_id] = max(peak[execution_id], in_flight[execution_id])
        counted()
        try:
            return await behave(name, body, execution_id, request)
        finally:
            in_flight[execution_id] -= 1
            counted()

    async def behave(name: str, body: dict[str, Any], eid: str, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.startswith("x-")}
        if name == "echo":
            return JSONResponse({"input": body, "headers": headers})
        if name == "none":
            return Response(b"null", media_type="application/json")
        if name == "listing":
            return JSONResponse([1, "two", None])
        if name == "text":
            return Response(b"plain words", media_type="text/plain")
        if name == "accept":
            later(eid, {"status": "succeeded", "result": body}, float(body.get("delay", 0.05)))
            return JSONResponse({"status": "processing", "execution_id": eid}, 202)
        if name == "accept_fail":
            later(eid, {"status": "error", "error": "model refused"}, 0.05)
            return JSONResponse({"status": "processing", "execution_id": eid}, 202)
        if name == "late":
            return JSONResponse({"status": "processing", "execution_id": eid}, 202)
        if name == "reject":
            return JSONResponse({"detail": "quarter is required"}, 422)
        if name == "boom":
            return Response(b"internal trouble", 500)
        if name == "flaky":
            if calls[eid] <= int(body.get("fail", 1)):
                return Response(b"try again", 503)
            return JSONResponse({"calls": calls[eid]})
        if name == "hang":
            await asyncio.sleep(3600)
        if name == "slow":
            await asyncio.sleep(float(body.get("s", 0.5)))
            return JSONResponse({"slept": body.get("s", 0.5)})
        if name == "block" and calls[eid] == 1:
            while (await request.receive())["type"] != "http.disconnect":
                pass  # hold the first call open until its worker dies
            return Response(b"gone", 500)
        return JSONResponse({"calls": calls[eid]})

    async def skill(request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"sum": body["a"] + body["b"]})

    async def stats(request: Request) -> Response:
        eid = request.path_params["execution_id"]
        expected = {k: int(v) for k, v in request.query_params.items() if k in COUNTS}

        def now() -> dict[str, int]:
            return {"calls": calls[eid], "peak": peak[eid], "in_flight": in_flight[eid]}

        watcher = asyncio.Event()
        watchers.add(watcher)
        try:
            async with asyncio.timeout(float(request.query_params.get("wait_s", 0))):
                while any(now()[k] != v for k, v in expected.items()):
                    await watcher.wait()
                    watcher.clear()
        except TimeoutError:
            return JSONResponse(now(), 408)
        finally:
            watchers.discard(watcher)
        return JSONResponse(now())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/reasoners/{name}", reasoner, methods=["POST"]),
            Route("/skills/{name}", skill, methods=["POST"]),
            Route("/calls/{execution_id}", stats),
            Route("/health", health),
        ]
    )


def registration(node_id: str, base_url: str, instance_id: str = "") -> dict[str, Any]:
    """The node record this agent registers, with extra AgentField fields that must be kept."""
    return {
        "instance_id": instance_id,
        "id": node_id,
        "base_url": base_url,
        "version": "1.0.0",
        "team_id": "e2e",
        "reasoners": [{"id": n, "input_schema": {"type": "object"}, "tags": []} for n in REASONERS],
        "skills": [{"id": n, "tags": ["math"]} for n in SKILLS],
        "metadata": {"purpose": "tests"},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--lose-callbacks", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        # In-flight `hang` and `block` calls would otherwise hold a SIGTERM for the harness's
        # whole kill timeout; a test agent has nothing worth draining.
        uvicorn.run(
            create_app(args.api, args.lose_callbacks),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
