"""A fake control plane for SDK unit tests: an httpx.MockTransport handler that answers the
routes agents and clients use, records every request, and can be told to misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "timeout"}
# What a test waits for may change without a request to this fake (an agent's own count of
# running reasoners): `until` looks again at least this often.
RECHECK_S = 0.01


class FakeControlPlane:
    """Executions submitted here end as `outcomes[target]` says (default: succeeded with the
    input echoed); `scripted[(method, path)]` answers come first, in order."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.executions: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.scripted: dict[tuple[str, str], list[httpx.Response | Exception]] = {}
        self._ids = itertools.count(1)
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def transport(self) -> httpx.MockTransport:
        """An async-capable transport routing to this fake."""
        return httpx.MockTransport(self.handle)

    def script(self, method: str, path: str, *answers: httpx.Response | Exception) -> None:
        """Queue answers (or exceptions to raise) for the next requests to `method path`."""
        self.scripted.setdefault((method, path), []).extend(answers)

    def sent(self, method: str, path_prefix: str) -> list[httpx.Request]:
        """Recorded requests whose path starts with `path_prefix`."""
        return [
            r for r in self.requests if r.method == method and r.url.path.startswith(path_prefix)
        ]

    def bodies(self, method: str, path_prefix: str) -> list[Any]:
        """Decoded JSON bodies of `sent(...)` (None for an empty body)."""
        return [
            json.loads(r.content) if r.content else None for r in self.sent(method, path_prefix)
        ]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Return once `predicate()` holds, looked at again on every request this fake
        receives (and every RECHECK_S); fail the test at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError("condition not met in time")
            watcher = (loop, asyncio.Event())
            self._watchers.add(watcher)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher[1].wait(), min(remaining, RECHECK_S))
            finally:
                self._watchers.discard(watcher)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route one request (the MockTransport handler)."""
        self.requests.append(request)
        # A copy: the waiters' loop adds and discards watchers while this thread iterates.
        for loop, received in list(self._watchers):
            # Thread-safe: a sync client may send from another thread than the waiter's.
            loop.call_soon_threadsafe(received.set)
        queue = self.scripted.get((request.method, request.url.path))
        if queue:
            answer = queue.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        path = request.url.path
        if path.startswith("/api/v1/execute/async/"):
            return self._submit(request, path.removeprefix("/api/v1/execute/async/"))
        if path == "/api/v1/executions/batch-status":
            ids = json.loads(request.content)["execution_ids"]
            found = {
                i: self.executions.get(i, {"execution_id": i, "status": "not_found"}) for i in ids
            }
            return httpx.Response(200, json=found)
        if request.method == "GET" and path.startswith("/api/v1/executions/"):
            doc = self.executions.get(path.rsplit("/", 1)[1])
            if doc is None:
                return httpx.Response(404, json={"error": "gone", "code": "execution_not_found"})
            return httpx.Response(200, json=doc)
        if path == "/api/v1/nodes/register":
            return httpx.Response(201, json={"success": True})
        return httpx.Response(200, json={"success": True})

    def _submit(self, request: httpx.Request, target: str) -> httpx.Response:
        execution_id = f"exec_{next(self._ids)}"
        run_id = request.headers.get("x-run-id") or f"run_{execution_id}"
        payload = json.loads(request.content)["input"]
        outcome = self.outcomes.get(target) or _succeeds
        self.executions[execution_id] = {
            "execution_id": execution_id,
            "run_id": run_id,
            "target": target,
            **outcome(payload),
        }
        answer = {"execution_id": execution_id, "run_id": run_id, "status": "queued"}
        return httpx.Response(202, json=answer)


def _succeeds(given: dict[str, Any]) -> dict[str, Any]:
    """The default outcome: the execution succeeds with its input as its result."""
    return {"status": "succeeded", "result": given}
