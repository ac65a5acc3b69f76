"""The control plane's answers as typed Structs, and its error answers as exceptions.

An error answer raises the class of `errors.py` whose `code` the API sent (`execution_not_found`
-> ExecutionNotFound), with `status_code` set; an unknown code raises a plain ApiError keeping
that code; no answer at all is ControlPlaneUnreachable.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from agentfield_arq import errors
from agentfield_arq.models import TERMINAL_STATUSES, Status, WebhookEvent

NOT_FOUND = "not_found"

T = TypeVar("T")


class Submitted(msgspec.Struct, kw_only=True):
    """The answer to execute-async: the execution is queued and durable."""

    execution_id: str
    run_id: str = ""
    workflow_id: str = ""
    status: str = Status.QUEUED
    target: str = ""
    type: str = ""
    created_at: str = ""
    webhook_registered: bool = False
    webhook_error: str | None = None


class Execution(msgspec.Struct, kw_only=True):
    """An execution's state, from GET, batch-status or the sync route alike."""

    execution_id: str
    status: str
    run_id: str = ""
    target: str = ""
    type: str = ""
    result: Any = None
    error: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    webhook_registered: bool = False
    webhook_status: str | None = None
    webhook_events: list[WebhookEvent] = []

    @property
    def terminal(self) -> bool:
        """True once the status is succeeded, failed, cancelled or timeout."""
        return self.status in TERMINAL_STATUSES

    @property
    def settled(self) -> bool:
        """True when waiting longer cannot change anything (terminal, or unknown id)."""
        return self.terminal or self.status == NOT_FOUND

    def outcome(self) -> Any:
        """The result of a succeeded execution; raises ExecutionError subclasses otherwise."""
        if self.status == Status.SUCCEEDED:
            return self.result
        if self.status == NOT_FOUND:
            raise errors.ExecutionNotFound(f"execution '{self.execution_id}' not found")
        kind = _FAILURES.get(self.status)
        if kind is None:
            raise errors.ClientError(f"execution {self.execution_id} is still {self.status}")
        raise kind(self.execution_id, self.status, self.error)


_FAILURES: dict[str, type[errors.ExecutionError]] = {
    Status.FAILED: errors.ExecutionFailed,
    Status.CANCELLED: errors.ExecutionCancelled,
    Status.TIMEOUT: errors.ExecutionTimedOut,
}


class SyncAnswer(msgspec.Struct, kw_only=True):
    """The answer of the sync route; `execution` gives it the common shape."""

    execution_id: str
    status: str
    run_id: str = ""
    result: Any = None
    error_message: str | None = None
    duration_ms: int | None = None
    finished_at: str | None = None
    webhook_registered: bool = False

    def execution(self, target: str) -> Execution:
        """This answer as an Execution (its `error_message` and `finished_at` renamed)."""
        return Execution(
            execution_id=self.execution_id,
            status=self.status,
            run_id=self.run_id,
            target=target,
            result=self.result,
            error=self.error_message,
            completed_at=self.finished_at,
            duration_ms=self.duration_ms,
            webhook_registered=self.webhook_registered,
        )


class _ErrorBody(msgspec.Struct, kw_only=True):
    error: str = ""
    code: str = ""
    execution_id: str = ""


def _error_classes() -> dict[str, type[errors.ApiError]]:
    found: dict[str, type[errors.ApiError]] = {}
    stack: list[type[errors.ApiError]] = [errors.ApiError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_ERROR_CLASSES = _error_classes()


def raise_for(response: httpx.Response) -> None:
    """Raise the error class of the answer's `code` (ApiError keeping an unknown code)."""
    if response.status_code < 400:
        return
    try:
        body = msgspec.json.decode(response.content, type=_ErrorBody)
    except msgspec.MsgspecError:
        body = _ErrorBody(error=response.text[:500])
    if response.status_code == 504 and body.execution_id:
        raise errors.WaitTimeout(body.error or "the sync limit passed", [body.execution_id])
    cls = _ERROR_CLASSES.get(body.code, errors.ApiError)
    exc = cls(body.error or f"HTTP {response.status_code}")
    if cls is errors.ApiError and body.code:
        exc.code = body.code
    exc.status_code = response.status_code
    raise exc


def decode(response: httpx.Response, kind: type[T]) -> T:
    raise_for(response)
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.MsgspecError as exc:
        raise errors.ClientError(f"unexpected answer from {response.url}: {exc}") from exc


def unreachable(exc: httpx.TransportError) -> errors.ControlPlaneUnreachable:
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return errors.ControlPlaneUnreachable(
        f"control plane unreachable ({type(exc).__name__}: {exc})", request_sent=not never_sent
    )
