"""`GET /discovery/capabilities`: AgentField's capability discovery, from the node registry."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.deps import deps
from agentfield_arq.core import discovery
from agentfield_arq.kernel.codec import encode, now_ms, rfc3339
from agentfield_arq.kernel.errors import InvalidRequest, NotSupported

FORMATS = ("json", "compact")
_FLAGS = {
    "include_input_schema": "input_schema",
    "include_output_schema": "output_schema",
    "include_descriptions": "descriptions",
    "include_examples": "examples",
}


def _flag(value: str, name: str) -> bool:
    if value not in ("true", "false"):
        raise InvalidRequest(f"{name}: true or false, got '{value[:20]}'")
    return value == "true"


def _count(value: str, name: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidRequest(f"{name}: a whole number from {low} to {high}")
    return int(value)


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def parse(params: dict[str, str]) -> discovery.Query:
    """The query string as a `Query` (AgentField's parameter names)."""
    flags = {field: _flag(params[name], name) for name, field in _FLAGS.items() if name in params}
    agents = _csv(params.get("agent")) + _csv(params.get("agent_ids"))
    agents += _csv(params.get("node_id")) + _csv(params.get("node_ids"))
    return discovery.Query(
        agents=agents,
        reasoner=params.get("reasoner") or None,
        skill=params.get("skill") or None,
        tags=_csv(params.get("tags")),
        health_status=(params.get("health_status") or "").lower() or None,
        limit=_count(params.get("limit", str(discovery.DEFAULT_LIMIT)), "limit", 1, 1000),
        offset=_count(params.get("offset", "0"), "offset", 0, 10**9),
        **flags,
    )


async def capabilities(request: Request) -> Response:
    """The nodes and their reasoners and skills that match the query, as json or compact."""
    fmt = request.query_params.get("format", "json").lower()
    if fmt == "xml":
        raise NotSupported("format xml is not offered here; ask for json or compact")
    if fmt not in FORMATS:
        raise InvalidRequest(f"format: one of json, compact, got '{fmt[:20]}'")
    query = parse(dict(request.query_params))
    found = discovery.capabilities(query, await deps(request).shards.nodes())
    now = rfc3339(now_ms())
    answer = (
        discovery.compact(found, now) if fmt == "compact" else discovery.page(query, found, now)
    )
    return Response(encode(answer), media_type="application/json")
