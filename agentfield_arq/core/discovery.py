"""Discovery: which nodes offer which reasoners and skills, filtered as AgentField's
`discover_capabilities` asks (node ids, reasoner or skill name, tags, health), from the node
registry. Names and tags may be glob patterns (`*research*`), as in AgentField."""

from __future__ import annotations

import fnmatch
from typing import Any

import msgspec

from agentfield_arq.kernel.discovery import (
    AgentCapability,
    CompactCapability,
    CompactDiscovery,
    Discovery,
    Pagination,
    ReasonerCapability,
    SkillCapability,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class Query(msgspec.Struct, kw_only=True, frozen=True):
    """What the caller asked for (the query string, parsed)."""

    agents: tuple[str, ...] = ()
    reasoner: str | None = None
    skill: str | None = None
    tags: tuple[str, ...] = ()
    health_status: str | None = None
    input_schema: bool = False
    output_schema: bool = False
    descriptions: bool = True
    examples: bool = False
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _matches(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def _tagged(query: Query, target: dict[str, Any]) -> bool:
    tags = [str(t) for t in target.get("tags") or []]
    return not query.tags or any(fnmatch.fnmatchcase(t, p) for t in tags for p in query.tags)


def _targets(query: Query, node: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    name = query.reasoner if kind == "reasoners" else query.skill
    if name is None and (query.reasoner is not None or query.skill is not None):
        return []  # asking for a reasoner by name leaves skills out, and the other way round
    return [
        t
        for t in node.get(kind) or []
        if isinstance(t, dict) and _matches(name, str(t.get("id", ""))) and _tagged(query, t)
    ]


def _reasoner(query: Query, node_id: str, t: dict[str, Any]) -> ReasonerCapability:
    return ReasonerCapability(
        id=str(t["id"]),
        description=t.get("description") if query.descriptions else None,
        tags=[str(x) for x in t.get("tags") or []],
        input_schema=t.get("input_schema") if query.input_schema else None,
        output_schema=t.get("output_schema") if query.output_schema else None,
        examples=t.get("examples") if query.examples else None,
        invocation_target=f"{node_id}.{t['id']}",
    )


def _skill(query: Query, node_id: str, t: dict[str, Any]) -> SkillCapability:
    return SkillCapability(
        id=str(t["id"]),
        description=t.get("description") if query.descriptions else None,
        tags=[str(x) for x in t.get("tags") or []],
        input_schema=t.get("input_schema") if query.input_schema else None,
        invocation_target=f"{node_id}.{t['id']}",
    )


def capabilities(query: Query, nodes: list[dict[str, Any]]) -> list[AgentCapability]:
    """Every node that matches, with its matching targets (a node left with none is dropped
    when a name or tag was asked for), sorted by node id."""
    found = []
    narrowed = query.reasoner is not None or query.skill is not None or bool(query.tags)
    for node in sorted(nodes, key=lambda n: str(n.get("id", ""))):
        node_id = str(node.get("id", ""))
        if query.agents and node_id not in query.agents:
            continue
        if query.health_status and node.get("health_status") != query.health_status:
            continue
        reasoners = [_reasoner(query, node_id, t) for t in _targets(query, node, "reasoners")]
        skills = [_skill(query, node_id, t) for t in _targets(query, node, "skills")]
        if narrowed and not reasoners and not skills:
            continue
        found.append(
            AgentCapability(
                agent_id=node_id,
                base_url=str(node.get("base_url", "")),
                version=str(node.get("version") or ""),
                health_status=str(node.get("health_status", "")),
                deployment_type=str(node.get("deployment_type") or "long_running"),
                last_heartbeat=str(node.get("last_heartbeat", "")),
                reasoners=reasoners,
                skills=skills,
            )
        )
    return found


def page(query: Query, found: list[AgentCapability], now_iso: str) -> Discovery:
    """The json answer: one page of nodes, with totals over every match."""
    window = found[query.offset : query.offset + query.limit]
    return Discovery(
        discovered_at=now_iso,
        total_agents=len(found),
        total_reasoners=sum(len(c.reasoners) for c in found),
        total_skills=sum(len(c.skills) for c in found),
        pagination=Pagination(
            limit=query.limit,
            offset=query.offset,
            has_more=query.offset + query.limit < len(found),
        ),
        capabilities=window,
    )


def compact(found: list[AgentCapability], now_iso: str) -> CompactDiscovery:
    """The compact answer: every matching target, flat."""
    return CompactDiscovery(
        discovered_at=now_iso,
        reasoners=[
            CompactCapability(id=r.id, agent_id=c.agent_id, target=r.invocation_target, tags=r.tags)
            for c in found
            for r in c.reasoners
        ],
        skills=[
            CompactCapability(id=s.id, agent_id=c.agent_id, target=s.invocation_target, tags=s.tags)
            for c in found
            for s in c.skills
        ],
    )
