"""Discovery, health, readiness and metrics."""

from __future__ import annotations

from typing import Any

from agentfield_arq.api import discovery, metrics, system
from agentfield_arq.api.access import Access
from agentfield_arq.api.openapi import Operation, Query
from agentfield_arq.api.operations.common import PREFIX, REDIS
from agentfield_arq.kernel.errors import InvalidRequest, NotReady, NotSupported
from agentfield_arq.kernel.models import Health

_DISCOVERY_QUERY = (
    Query("format", "json (default) or compact", {"type": "string", "enum": ["json", "compact"]}),
    *(
        Query(name, about, {"type": "string"})
        for name, about in (
            ("agent", "one node id"),
            ("agent_ids", "node ids, comma-separated"),
            ("reasoner", "a reasoner name or glob pattern; leaves skills out"),
            ("skill", "a skill name or glob pattern; leaves reasoners out"),
            ("tags", "tags or glob patterns, comma-separated: any one matches"),
            ("health_status", "healthy or inactive"),
        )
    ),
    *(
        Query(f"include_{name}", f"include {name.replace('_', ' ')}", {"type": "boolean"})
        for name in ("input_schema", "output_schema", "descriptions", "examples")
    ),
    Query("limit", "nodes per page", {"type": "integer", "minimum": 1, "maximum": 1000}),
    Query("offset", "nodes to skip", {"type": "integer", "minimum": 0, "maximum": 10**9}),
)

_HEALTH = {200: ("Redis answers", Health)}

_DETAIL = (Query("detail", "1 adds the counts", {"enum": ["0", "1", "false", "true"]}),)

OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        f"{PREFIX}/discovery/capabilities",
        discovery.capabilities,
        "Which nodes offer which reasoners and skills (AgentField's discovery)",
        {200: ("json: a `Discovery` page of nodes; compact: a `CompactDiscovery`", dict[str, Any])},
        query=_DISCOVERY_QUERY,
        errors=(InvalidRequest, NotSupported, *REDIS),
        access=Access.CALLER,
    ),
    *(
        Operation(
            "GET",
            path,
            system.health,
            summary,
            _HEALTH,
            query=_DETAIL,
            errors=(InvalidRequest, *REDIS),
            access=Access.PUBLIC,
        )
        for path, summary in (
            (
                f"{PREFIX}/health",
                "Health; with `detail=1`, the queue, the workers alive and the active nodes",
            ),
            ("/health", "Liveness (as /api/v1/health)"),
        )
    ),
    Operation(
        "GET",
        "/ready",
        system.ready,
        "Readiness: Redis answers and a worker is alive; with the queue and node counts",
        {200: ("ready", Health)},
        errors=(NotReady, *REDIS),
        access=Access.PUBLIC,
    ),
    Operation(
        "GET",
        "/metrics",
        metrics.metrics,
        "Prometheus metrics of the whole deployment (text format 0.0.4), read from Redis",
        {200: ("`text/plain; version=0.0.4`: the metrics docs/contract.md lists", None)},
        errors=REDIS,
        access=Access.ADMIN,
    ),
]
