"""Reading the control plane's answers: into the kernel's Structs, or, for an error answer,
as an exception.

An error answer raises the class of `errors.py` whose `code` the API sent (`execution_not_found`
-> ExecutionNotFound), with `status_code` set; an unknown code raises a plain ApiError keeping
that code; no answer at all is ControlPlaneUnreachable.
"""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from agentfield_arq.kernel import errors
from agentfield_arq.kernel.models import ErrorBody

T = TypeVar("T")


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
        body = msgspec.json.decode(response.content, type=ErrorBody)
    except msgspec.MsgspecError:  # not ours (a proxy's page, say): its text is the message
        body = ErrorBody(error=response.text[:500])
    if response.status_code == 504 and body.execution_id:
        raise errors.WaitTimeout(body.error or "the sync limit passed", [body.execution_id])
    cls = _ERROR_CLASSES.get(body.code, errors.ApiError)
    exc = cls(body.error or f"HTTP {response.status_code}")
    if cls is errors.ApiError and body.code:
        exc.code = body.code
    exc.status_code = response.status_code
    # RateLimited, NodeUnavailable...: the answer's Retry-After, else the class's default.
    exc.retry_after_s = _seconds(response.headers.get("retry-after"), exc.retry_after_s)
    raise exc


def _seconds(value: str | None, default: int | None) -> int | None:
    """A `Retry-After` in seconds (the control plane sends whole seconds), else `default`."""
    return int(value) if value is not None and value.isascii() and value.isdigit() else default


def decode(response: httpx.Response, kind: type[T]) -> T:
    """The answer decoded into `kind`, or the error it is."""
    raise_for(response)
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.MsgspecError as exc:
        raise errors.ClientError(f"unexpected answer from {response.url}: {exc}") from exc


def unreachable(exc: httpx.TransportError) -> errors.ControlPlaneUnreachable:
    """The error of a request that got no HTTP answer."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return errors.ControlPlaneUnreachable(
        f"control plane unreachable ({type(exc).__name__}: {exc})", request_sent=not never_sent
    )
