"""A webhook receiver for trying the system out: it checks both signatures of each delivery and
prints one line per webhook. `agentfield-arq webhook-receiver --secret S` runs it, and the run
command starts one so that the walkthrough's webhook lands somewhere visible.

It is also the shortest correct receiver: read the raw body, verify it, then parse it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentfield_arq.kernel.body import read_body
from agentfield_arq.kernel.errors import InvalidSignature, PayloadTooLarge, http_status
from agentfield_arq.kernel.signing import verify

# The largest webhook the control plane sends: a 10 MiB result (its default cap) and the rest.
MAX_BODY_BYTES = 10 * 1_048_576 + 65_536


def create_receiver_app(
    secret: str, say: Callable[[str], None] = print, *, max_body_bytes: int = MAX_BODY_BYTES
) -> Starlette:
    """A Starlette app that accepts verified webhooks on any path and refuses others (401, or
    413 past `max_body_bytes`)."""

    async def receive(request: Request) -> JSONResponse:
        try:
            body = await read_body(request, max_body_bytes)
        except PayloadTooLarge as exc:
            return JSONResponse({"error": exc.message, "code": exc.code}, http_status(exc))
        try:
            # Each scheme on its own, to show that both hold; a real receiver checks one.
            payload = verify(body, request.headers, secret, scheme="standard")
            verify(body, request.headers, secret, scheme="agentfield")
        except InvalidSignature as exc:
            say(f"webhook-receiver: REFUSED {request.url.path}: {exc}")
            return JSONResponse({"error": str(exc)}, 401)
        say(
            f"webhook-receiver: verified {payload.get('event')} {payload.get('execution_id')} "
            f"status={payload.get('status')} webhook-id={request.headers['webhook-id']} "
            f"(Standard Webhooks and X-AgentField-Signature both valid)\n  {body.decode()}"
        )
        return JSONResponse({"received": True})

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
