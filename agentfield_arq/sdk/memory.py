"""`app.memory`: the control plane's scoped memory, with AgentField's API and scopes.

Inside a reasoner or skill the scopes are the current execution's: its run (the workflow
scope), session and actor, read from the headers it was started with; outside one only the
global scope is reachable. Without `scope`, a write lands in the most specific scope there is
and a read walks workflow, session, actor, then global, as the control plane does.

Unlike AgentField's SDK, a failure is never mistaken for absence: `get` returns its `default`
only when the control plane says the key is not stored (`memory_not_found`), and `exists` and
`get` raise the error of any other answer (a control plane without memory answers `not_found`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from agentfield_arq.client.answers import decode, raise_for, unreachable
from agentfield_arq.kernel import errors
from agentfield_arq.kernel.memory import SCOPE_HEADERS, SCOPES, MemoryRecord, VectorHit
from agentfield_arq.sdk.context import current


class Memory:
    """Memory as one agent sees it; `session(id)`, `actor(id)`, `workflow(id)` and
    `global_scope` give the same API bound to one scope."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        node_id: str,
        scope: str | None = None,
        scope_id: str | None = None,
    ) -> None:
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        self._http = http
        self.node_id = node_id
        self.scope = scope
        self.scope_id = scope_id

    def session(self, session_id: str) -> Memory:
        """This API bound to one session's scope."""
        return Memory(self._http, self.node_id, "session", session_id)

    def actor(self, actor_id: str) -> Memory:
        """This API bound to one actor's scope."""
        return Memory(self._http, self.node_id, "actor", actor_id)

    def workflow(self, run_id: str) -> Memory:
        """This API bound to one run's (workflow) scope."""
        return Memory(self._http, self.node_id, "workflow", run_id)

    @property
    def global_scope(self) -> Memory:
        """This API bound to the global scope, shared by every agent."""
        return Memory(self._http, self.node_id, "global")

    # ------------------------------------------------------------------ values

    async def set(
        self, key: str, data: Any, scope: str | None = None, scope_id: str | None = None
    ) -> None:
        """Store `data` (any JSON value) under `key`."""
        body = {"key": key, "data": data, **self._scope(scope)}
        raise_for(await self._post("/api/v1/memory/set", body, scope, scope_id))

    async def get(
        self, key: str, default: Any = None, scope: str | None = None, scope_id: str | None = None
    ) -> Any:
        """The value stored under `key`, or `default` when it is not stored."""
        body = {"key": key, **self._scope(scope)}
        response = await self._post("/api/v1/memory/get", body, scope, scope_id)
        try:
            return decode(response, MemoryRecord).data
        except errors.MemoryNotFound:
            return default

    async def exists(self, key: str, scope: str | None = None, scope_id: str | None = None) -> bool:
        """Whether a value is stored under `key` (a stored `null` counts)."""
        missing = object()
        return await self.get(key, missing, scope, scope_id) is not missing

    async def delete(self, key: str, scope: str | None = None, scope_id: str | None = None) -> None:
        """Delete `key` (nothing happens if it is not stored)."""
        body = {"key": key, **self._scope(scope)}
        raise_for(await self._post("/api/v1/memory/delete", body, scope, scope_id))

    async def list_keys(self, scope: str | None = None, scope_id: str | None = None) -> list[str]:
        """The keys of one scope (this memory's, else `scope`), sorted."""
        name = scope or self.scope
        if name is None:
            raise ValueError("list_keys needs a scope")
        response = await self._send(
            "GET", "/api/v1/memory/list", None, name, scope_id, {"scope": name}
        )
        return [record.key for record in decode(response, list[MemoryRecord])]

    # ------------------------------------------------------------------ vectors

    async def set_vector(
        self,
        key: str,
        embedding: Sequence[float],
        metadata: dict[str, Any] | None = None,
        scope: str | None = None,
        scope_id: str | None = None,
    ) -> None:
        """Store a vector (and its metadata) under `key`."""
        body: dict[str, Any] = {
            "key": key,
            "embedding": [float(x) for x in embedding],
            **self._scope(scope),
        }
        if metadata:
            body["metadata"] = metadata
        raise_for(await self._post("/api/v1/memory/vector/set", body, scope, scope_id))

    async def delete_vector(
        self, key: str, scope: str | None = None, scope_id: str | None = None
    ) -> None:
        """Delete the vector under `key`."""
        body = {"key": key, **self._scope(scope)}
        raise_for(await self._post("/api/v1/memory/vector/delete", body, scope, scope_id))

    async def similarity_search(
        self,
        query_embedding: Sequence[float],
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        scope: str | None = None,
        scope_id: str | None = None,
    ) -> list[VectorHit]:
        """The `top_k` stored vectors most similar to the query (cosine), best first."""
        body = {
            "query_embedding": [float(x) for x in query_embedding],
            "top_k": top_k,
            "filters": filters or {},
            **self._scope(scope),
        }
        response = await self._post("/api/v1/memory/vector/search", body, scope, scope_id)
        return decode(response, list[VectorHit])

    # ------------------------------------------------------------------ the wire

    def _scope(self, scope: str | None) -> dict[str, str]:
        name = scope or self.scope
        return {"scope": name} if name else {}

    def _headers(self, scope: str | None, scope_id: str | None) -> dict[str, str]:
        context = current()
        # Lower-case names throughout, so that an explicit scope id replaces the context's.
        headers = {"content-type": "application/json", "x-agent-node-id": self.node_id}
        if context is not None:
            headers.update({k.lower(): v for k, v in context.scope_headers().items()})
        name, given = scope or self.scope, scope_id or (self.scope_id if not scope else None)
        if name in SCOPE_HEADERS and given:
            headers[SCOPE_HEADERS[name]] = given
        return headers

    async def _post(
        self, path: str, body: dict[str, Any], scope: str | None, scope_id: str | None
    ) -> httpx.Response:
        return await self._send("POST", path, msgspec.json.encode(body), scope, scope_id, None)

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        scope: str | None,
        scope_id: str | None,
        params: dict[str, str] | None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method, path, content=content, params=params, headers=self._headers(scope, scope_id)
            )
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
