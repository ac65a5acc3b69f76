"""The wire shapes of `GET /discovery/capabilities`, as AgentField's SDK reads them
(`agentfield/types.py`: `DiscoveryResponse`, `CompactDiscoveryResponse`)."""

from __future__ import annotations

from typing import Any

import msgspec


class ReasonerCapability(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One reasoner of a node; schemas, description and examples only when asked for."""

    id: str
    description: str | None = None
    tags: list[str] = []
    input_schema: Any = None
    output_schema: Any = None
    examples: list[Any] | None = None
    invocation_target: str


class SkillCapability(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One skill of a node."""

    id: str
    description: str | None = None
    tags: list[str] = []
    input_schema: Any = None
    invocation_target: str


class AgentCapability(msgspec.Struct, kw_only=True):
    """One node and the reasoners and skills of it that match the query."""

    agent_id: str
    base_url: str
    version: str
    health_status: str
    deployment_type: str
    last_heartbeat: str
    reasoners: list[ReasonerCapability]
    skills: list[SkillCapability]


class Pagination(msgspec.Struct, kw_only=True):
    """Where this page sits among the matching nodes."""

    limit: int
    offset: int
    has_more: bool


class Discovery(msgspec.Struct, kw_only=True):
    """The `format=json` answer (the default)."""

    discovered_at: str
    total_agents: int
    total_reasoners: int
    total_skills: int
    pagination: Pagination
    capabilities: list[AgentCapability]


class CompactCapability(msgspec.Struct, kw_only=True):
    """One target in the `format=compact` answer."""

    id: str
    agent_id: str
    target: str
    tags: list[str]


class CompactDiscovery(msgspec.Struct, kw_only=True):
    """The `format=compact` answer: every matching target, flat."""

    discovered_at: str
    reasoners: list[CompactCapability]
    skills: list[CompactCapability]
