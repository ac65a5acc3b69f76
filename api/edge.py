"""The API's edge: a pure ASGI middleware that refuses what no route should see, bounds how long
a body may take, and answers anything unexpected itself.

- `Host` must name a host this API answers for (`Settings.allowed_host_names`): a page on
  another site that resolves its name to 127.0.0.1 (DNS rebinding) is answered 421.
- A request body must be `application/json` (415): a browser may POST `text/plain` to any
  origin without a preflight.
- The whole body must arrive within `body_timeout_s` of the request's headers (408, and the
  connection is closed): a peer trickling bytes holds no connection for longer.
- An exception no handler knows is logged once, with its traceback, and answered 500 in our
  error shape; the connection stays usable (uvicorn would log it again and close the
  connection without saying so).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentfield_arq.api.errors import error_response, internal_error
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel import errors

if TYPE_CHECKING:
    from agentfield_arq.api.routes import Express

JSON = "application/json"
CLOSE = (b"connection", b"close")


def host_name(header: str) -> str:
    """The host of a `Host` header, lower case, without port, brackets or a final dot."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return (value.rpartition(":")[0] if ":" in value else value).rstrip(".")


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip(b"0 ") != b"")


def refusal(scope: Scope, hosts: frozenset[str] | None) -> errors.ApiError | None:
    """The error a request is answered with before any route sees it, or None."""
    return _refusal(dict(scope["headers"]), hosts)


def _refusal(headers: dict[bytes, bytes], hosts: frozenset[str] | None) -> errors.ApiError | None:
    host = headers.get(b"host")
    if hosts is not None and host is not None:
        name = host_name(host.decode("latin-1"))
        if name not in hosts:
            return errors.HostNotAllowed(f"Host: '{name[:100]}' is not a host this API serves")
    if _has_body(headers):
        kind = headers.get(b"content-type", b"").decode("latin-1")
        if kind.partition(";")[0].strip().lower() != JSON:
            shown = f"'{kind[:100]}'" if kind else "missing"
            return errors.UnsupportedMediaType(f"Content-Type: {shown}; request bodies are {JSON}")
    return None


class Edge:
    """See the module's docstring; one instance wraps the app's router."""

    def __init__(self, app: ASGIApp, settings: Settings, express: Express | None = None) -> None:
        self.app = app
        self.hosts = settings.allowed_host_names
        self.body_timeout_s = settings.body_timeout_s
        self.express = express

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, or serve `scope` with a body deadline and a last-resort error answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refused = _refusal(headers, self.hosts)
        if refused is not None:
            response = error_response(errors.http_status(refused), refused.code, refused.message)
            if _has_body(headers):  # left unread: the connection is not reused
                response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        exchange = _Exchange(receive, send, self.body_timeout_s if _has_body(headers) else None)
        express = self.express
        found = None if express is None else express.match(scope)
        try:
            if express is None or found is None:
                await self.app(scope, exchange.receive, exchange.send)
            else:
                await express.serve(*found, scope, exchange.receive, exchange.send)
        except Exception as exc:
            if exchange.started:
                raise  # the answer is half sent: only closing the connection can end it
            await (await internal_error(Request(scope), exc))(scope, receive, send)
        finally:
            exchange.close()


class _Exchange:
    """One request's receive and send as the app sees them: the body must arrive within its
    deadline, and an answer sent after the deadline passed closes the connection.

    One timer per request with a body, cancelled once the body is in (most bodies come with
    their headers): a timeout context per receive cost ~4% of the API's CPU (bench/). The timer
    cancels the task only while it waits for the body, as a timeout around each wait would.
    """

    __slots__ = ("_receive", "_send", "_timeout_s", "_timer", "_waiting", "expired", "started")

    def __init__(self, receive: Receive, send: Send, timeout_s: float | None) -> None:
        self._receive = receive
        self._send = send
        self._timeout_s = timeout_s
        self._waiting: asyncio.Task[object] | None = None
        self.expired = False
        self.started = False
        self._timer = (
            None
            if timeout_s is None
            else asyncio.get_running_loop().call_later(timeout_s, self._expire)
        )

    async def receive(self) -> Message:
        """The next message; RequestTimeout if the body is not all in by the deadline."""
        if self._timer is None and not self.expired:
            return await self._receive()
        if self.expired:
            raise self._timeout()
        task = asyncio.current_task()
        assert task is not None
        before = task.cancelling()
        self._waiting = task
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if self.expired and task.uncancel() <= before:
                raise self._timeout() from None
            raise
        finally:
            self._waiting = None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.close()
        return message

    async def send(self, message: Message) -> None:
        """Pass `message` on; a response started after the deadline says `Connection: close`
        (the rest of the body may still come)."""
        if message["type"] == "http.response.start":
            self.started = True
            if self.expired:
                message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
        await self._send(message)

    def close(self) -> None:
        """The body is in, or the request is over: no deadline any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self.expired = True
        if self._waiting is not None:
            self._waiting.cancel()

    def _timeout(self) -> errors.RequestTimeout:
        return errors.RequestTimeout(
            f"request body: not received within {self._timeout_s:g}s (body_timeout_s)"
        )
