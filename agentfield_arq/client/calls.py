"""The requests of the control plane's API, each with the way its answer decodes.

`AsyncClient` and `Client` build every request here and differ only in how they send it (with
or without an event loop), so the paths, bodies, headers and answer types live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from agentfield_arq.client.answers import decode
from agentfield_arq.kernel.models import (
    BatchStatusRequest,
    CancelRequest,
    ExecuteRequest,
    Execution,
    Submitted,
    SyncResult,
)

BATCH_CHUNK = 500
_JSON = {"Content-Type": "application/json"}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to the control plane and how to read its answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: httpx.Timeout | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments of `httpx.Client.request` and `httpx.AsyncClient.request`."""
        extra: dict[str, Any] = {} if self.timeout is None else {"timeout": self.timeout}
        return {"content": self.body, "headers": dict(self.headers), **extra}


def _reader(kind: type[T]) -> Callable[[httpx.Response], T]:
    def read(response: httpx.Response) -> T:
        return decode(response, kind)

    return read


def _submission(
    route: str,
    target: str,
    input: Mapping[str, Any] | None,
    webhook: Any,
    context: Any,
    headers: Mapping[str, str] | None,
) -> tuple[str, bytes, dict[str, str]]:
    body = ExecuteRequest(input=dict(input or {}), context=context, webhook=webhook)
    path = f"/api/v1/{route}/{quote(target, safe='')}"
    return path, msgspec.json.encode(body), {**_JSON, **(headers or {})}


def execute_async(
    target: str,
    input: Mapping[str, Any] | None,
    webhook: Any,
    context: Any,
    headers: Mapping[str, str] | None,
) -> Call[Submitted]:
    """Queue an execution of `target`."""
    path, body, sent = _submission("execute/async", target, input, webhook, context, headers)
    return Call("POST", path, _reader(Submitted), body, sent)


def execute(
    target: str,
    input: Mapping[str, Any] | None,
    webhook: Any,
    context: Any,
    headers: Mapping[str, str] | None,
    timeout: httpx.Timeout,
) -> Call[Execution[Any]]:
    """Run an execution through the sync route, whose answer may take `timeout.read`."""

    def read(response: httpx.Response) -> Execution[Any]:
        return decode(response, SyncResult[Any]).execution(target)

    path, body, sent = _submission("execute", target, input, webhook, context, headers)
    return Call("POST", path, read, body, sent, timeout)


def get(execution_id: str) -> Call[Execution[Any]]:
    """One execution's state."""
    return Call(
        "GET", f"/api/v1/executions/{quote(execution_id, safe='')}", _reader(Execution[Any])
    )


def cancel(execution_id: str, reason: str | None) -> Call[Execution[Any]]:
    """Cancel an execution (and its descendants), keeping `reason` as its error."""
    return Call(
        "POST",
        f"/api/v1/executions/{quote(execution_id, safe='')}/cancel",
        _reader(Execution[Any]),
        msgspec.json.encode(CancelRequest(reason=reason)),
        _JSON,
    )


def batch_status(execution_ids: Iterable[str]) -> list[Call[dict[str, Execution[Any]]]]:
    """Many executions' states: one call per chunk of BATCH_CHUNK distinct ids."""
    unique = list(dict.fromkeys(execution_ids))
    path, read = "/api/v1/executions/batch-status", _reader(dict[str, Execution[Any]])
    return [
        Call(
            "POST",
            path,
            read,
            msgspec.json.encode(BatchStatusRequest(execution_ids=unique[i : i + BATCH_CHUNK])),
            _JSON,
        )
        for i in range(0, len(unique), BATCH_CHUNK)
    ]
