"""Talking to the control plane from Python: `AsyncClient`, and `Client`, its synchronous twin.

    async with AsyncClient("http://127.0.0.1:8080") as client:
        submitted = await client.execute_async("finance.deep_analysis", {"quarter": "Q3"})
        value = await client.result(submitted.execution_id)

Both build their requests with `calls.py` and differ only in sending them. Answers decode into
the kernel's Structs (`kernel/models.py`) through `answers.py`, and error answers raise the
classes of `kernel/errors.py` named by their `code`. Nothing is retried here: whether resending
is safe is the caller's call (ControlPlaneUnreachable's `request_sent` says whether the request
may have arrived).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from agentfield_arq.client import calls
from agentfield_arq.client.answers import unreachable
from agentfield_arq.client.waiter import Waiter
from agentfield_arq.kernel import errors
from agentfield_arq.kernel.models import Execution, Submitted

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"
# Read in this order when no URL is passed; the first is what AgentField's own SDK reads too.
SERVER_URL_VARIABLES = ("AGENTFIELD_SERVER", "AGENTFIELD_SERVER_URL")
API_KEY_VARIABLE = "AGENTFIELD_API_KEY"
# The sync route waits on the server (90 s by default); the client must outwait it.
SYNC_TIMEOUT_S = 150.0

T = TypeVar("T")


def resolve_server_url(explicit: str | None = None) -> str:
    """The control plane's URL: the argument, else $AGENTFIELD_SERVER, else the local default."""
    for candidate in (explicit, *(os.environ.get(v) for v in SERVER_URL_VARIABLES)):
        if candidate:
            return candidate.rstrip("/")
    return DEFAULT_SERVER_URL


def resolve_api_key(explicit: str | None = None) -> str | None:
    """The API key: the argument, else $AGENTFIELD_API_KEY (which AgentField's SDK reads too)."""
    return explicit or os.environ.get(API_KEY_VARIABLE) or None


def _pool(
    server_url: str, api_key: str | None, headers: Mapping[str, str] | None, timeout_s: float
) -> dict[str, Any]:
    """The connection pool's options, the same for both clients."""
    agent = {"User-Agent": "agentfield-arq", **(headers or {})}
    if api_key:
        agent["Authorization"] = f"Bearer {api_key}"
    return {"base_url": server_url, "headers": agent, "timeout": timeout_s}


class AsyncClient:
    """The control plane's API for asyncio code; `transport=` swaps the network out in tests.

    `api_key` (else $AGENTFIELD_API_KEY) is sent as `Authorization: Bearer` on every request.
    `timeout_s` bounds each request; the sync route's answer may take up to `sync_timeout_s`
    (it must outlast the server's sync limit, AGENTFIELD_ARQ_SYNC_TIMEOUT_S)."""

    def __init__(
        self,
        server_url: str | None = None,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        sync_timeout_s: float = SYNC_TIMEOUT_S,
        poll_min_s: float = 0.05,
        poll_max_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server_url = resolve_server_url(server_url)
        # The server holds the sync route's answer until the execution ends or its sync limit.
        self.sync_timeout = httpx.Timeout(timeout_s, read=sync_timeout_s)
        self._http = httpx.AsyncClient(
            **_pool(self.server_url, resolve_api_key(api_key), headers, timeout_s),
            transport=transport,
        )
        self._waiter = Waiter(
            self.batch_status, min_interval_s=poll_min_s, max_interval_s=poll_max_s
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _do(self, call: calls.Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return call.read(response)

    async def execute_async(
        self,
        target: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: Any = None,
        context: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Submitted:
        """Queue an execution of `node_id.name` with `input`; answers once it is durable."""
        return await self._do(calls.execute_async(target, input, webhook, context, headers))

    async def execute(
        self,
        target: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: Any = None,
        context: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Execution[Any]:
        """Run an execution through the sync route; WaitTimeout (with its id) at the server's
        limit, the execution carrying on."""
        return await self._do(
            calls.execute(target, input, webhook, context, headers, self.sync_timeout)
        )

    async def get(self, execution_id: str) -> Execution[Any]:
        """One execution's state; ExecutionNotFound for an unknown id."""
        return await self._do(calls.get(execution_id))

    async def cancel(self, execution_id: str, reason: str | None = None) -> Execution[Any]:
        """Cancel an execution that has not ended: its agent is told, its descendants in its run
        are cancelled too, and `reason` is kept as its error. Cancelling a cancelled execution
        changes nothing; InvalidTransition if it ended otherwise."""
        return await self._do(calls.cancel(execution_id, reason))

    async def batch_status(self, execution_ids: Iterable[str]) -> dict[str, Execution[Any]]:
        """Many executions' states, keyed by id (an unknown id has status `not_found`), asked
        in chunks of 500."""
        found: dict[str, Execution[Any]] = {}
        for call in calls.batch_status(execution_ids):
            chunk = await self._do(call)
            found.update(chunk)
        return found

    async def wait(
        self, execution_ids: Iterable[str], timeout_s: float | None = None
    ) -> dict[str, Execution[Any]]:
        """Wait until every execution is terminal (or unknown); WaitTimeout at the limit.

        Concurrent waits on one client share a single batch-status poll loop."""
        return await self._waiter.wait(list(dict.fromkeys(execution_ids)), timeout_s)

    async def result(self, execution_id: str, timeout_s: float | None = None) -> Any:
        """Wait for one execution; its result, or the ExecutionError its end deserves."""
        return (await self.wait([execution_id], timeout_s))[execution_id].outcome()


class Client:
    """The same API for code without an event loop; `wait` polls with growing pauses."""

    def __init__(
        self,
        server_url: str | None = None,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        sync_timeout_s: float = SYNC_TIMEOUT_S,
        poll_min_s: float = 0.05,
        poll_max_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server_url = resolve_server_url(server_url)
        self.sync_timeout = httpx.Timeout(timeout_s, read=sync_timeout_s)
        self.poll_min_s, self.poll_max_s = poll_min_s, poll_max_s
        self._http = httpx.Client(
            **_pool(self.server_url, resolve_api_key(api_key), headers, timeout_s),
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _do(self, call: calls.Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return call.read(response)

    def execute_async(
        self,
        target: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: Any = None,
        context: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Submitted:
        """See AsyncClient.execute_async."""
        return self._do(calls.execute_async(target, input, webhook, context, headers))

    def execute(
        self,
        target: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: Any = None,
        context: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Execution[Any]:
        """See AsyncClient.execute."""
        return self._do(calls.execute(target, input, webhook, context, headers, self.sync_timeout))

    def get(self, execution_id: str) -> Execution[Any]:
        """See AsyncClient.get."""
        return self._do(calls.get(execution_id))

    def cancel(self, execution_id: str, reason: str | None = None) -> Execution[Any]:
        """See AsyncClient.cancel."""
        return self._do(calls.cancel(execution_id, reason))

    def batch_status(self, execution_ids: Iterable[str]) -> dict[str, Execution[Any]]:
        """See AsyncClient.batch_status."""
        found: dict[str, Execution[Any]] = {}
        for call in calls.batch_status(execution_ids):
            chunk = self._do(call)
            found.update(chunk)
        return found

    def wait(
        self, execution_ids: Iterable[str], timeout_s: float | None = None
    ) -> dict[str, Execution[Any]]:
        """See AsyncClient.wait."""
        wanted = list(dict.fromkeys(execution_ids))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        done: dict[str, Execution[Any]] = {}
        delay = self.poll_min_s
        while True:
            pending = [i for i in wanted if i not in done]
            done.update((i, e) for i, e in self.batch_status(pending).items() if e.settled)
            late = [i for i in wanted if i not in done]
            if not late:
                return {i: done[i] for i in wanted}
            pause = delay if deadline is None else min(delay, deadline - time.monotonic())
            if pause <= 0:
                raise errors.WaitTimeout(
                    f"{len(late)} execution(s) not finished after {timeout_s}s", late
                )
            time.sleep(pause)
            delay = min(self.poll_max_s, delay * 1.5)

    def result(self, execution_id: str, timeout_s: float | None = None) -> Any:
        """See AsyncClient.result."""
        return self.wait([execution_id], timeout_s)[execution_id].outcome()
