"""The API of a test, in this process: the real app over httpx's ASGI transport, its lifespan
entered, every request made with the deployment's admin key unless told otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Scope, Send

from agentfield_arq.api.app import create_app
from agentfield_arq.core.settings import Settings
from tests.conftest import TEST_HOST
from tests.keys import ADMIN_KEY, bearer


@contextlib.asynccontextmanager
async def served(
    settings: Settings, key: str | None = ADMIN_KEY
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app for `settings` that sends `key` (None: no key at all)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})  # what an ASGI server does with lifespan state
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        headers = bearer(key) if key else {}
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{TEST_HOST}", headers=headers
        ) as client:
            yield client
