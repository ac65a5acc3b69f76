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

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentfield_arq.api.errors import error_response, internal_error
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel import errors

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
    headers = dict(scope["headers"])
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

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = settings.allowed_host_names
        self.body_timeout_s = settings.body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, or serve `scope` with a body deadline and a last-resort error answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = refusal(scope, self.hosts)
        if refused is not None:
            response = error_response(errors.http_status(refused), refused.code, refused.message)
            if _has_body(dict(scope["headers"])):  # left unread: the connection is not reused
                response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        state = {"body_done": False, "timed_out": False, "started": False}

        async def timed_receive() -> Message:
            if state["body_done"]:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                state["timed_out"] = True
                raise errors.RequestTimeout(
                    f"request body: not received within {self.body_timeout_s:g}s (body_timeout_s)"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                if state["timed_out"]:  # the rest of the body may still come: no reuse
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except Exception as exc:
            if state["started"]:
                raise  # the answer is half sent: only closing the connection can end it
            await (await internal_error(Request(scope), exc))(scope, receive, send)
