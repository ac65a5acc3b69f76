"""The node registry: which agents exist, where they listen, and whether they are alive."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.keys import NODE_TTL_S, Keys, safe_id
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import any_decoder, now_ms, rfc3339, text
from agentfield_arq.kernel.errors import (
    InvalidBaseUrl,
    InvalidRequest,
    InvalidTarget,
    NodeNotFound,
    NodeOwned,
)
from agentfield_arq.kernel.models import NodeRegistration
from agentfield_arq.kernel.status import TargetKind
from agentfield_arq.kernel.targets import parse_target
from agentfield_arq.kernel.urls import parse_base_url

logger = logging.getLogger(__name__)

STOPPED = "stopped"
# Statuses in which a node says it cannot take work, whatever its heartbeats.
DOWN_STATUSES = frozenset({STOPPED, "offline", "stopping", "shutting_down"})


class Registered(msgspec.Struct, kw_only=True, frozen=True):
    """A registration's outcome: where the node listens, and whether it came back as another
    instance (a new `instance_id`) than the one registered before."""

    base_url: str
    restarted: bool


# The node's fields that say how to call it, in `dispatch_of`'s order.
DISPATCH_FIELDS = ["base_url", "last_heartbeat_ms", "agent_status", "call_timeout_s", "retry_safe"]


class Dispatch(msgspec.Struct, kw_only=True, frozen=True):
    """What a worker needs to call a node: where it listens, whether it is live (heard from
    within its lease and not stopped), its call limit and whether its calls may be repeated."""

    base_url: str
    live: bool
    timeout_s: float | None
    retry_safe: bool


class NodeRegistry:
    """Registration, heartbeats and lookups of agent nodes."""

    def __init__(self, redis: Redis, settings: Settings, owners: Redis | None = None) -> None:
        self.redis = redis
        # Who owns a node id is written beside the API keys: on the home Redis when the node
        # is routed to another one (core/routing.py).
        self.owners = owners or redis
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self._heartbeat = load_script(redis, "heartbeat")
        self._forget = load_script(redis, "forget_nodes")
        self._claim = load_script(self.owners, "claim_node")

    async def register(
        self, body: bytes, node: NodeRegistration, identity: Identity = ANONYMOUS_ADMIN
    ) -> Registered:
        """Store a node's record (all its fields, known or not). The first agent key to
        register an id owns it; another key's registration is NodeOwned and changes nothing.
        In-process callers act as an admin."""
        try:
            parse_target(f"{node.id}.x")  # the node id must be usable in targets
        except InvalidTarget as exc:
            raise InvalidRequest(
                f"id: '{node.id[:128]}' must be 1-128 letters, digits, '_' or '-'"
            ) from exc
        base_url = read_base_url(node.base_url)
        if node.max_in_flight is not None and node.max_in_flight < 1:
            raise InvalidRequest("max_in_flight: must be at least 1")
        targets: dict[str, str] = {r.id: TargetKind.REASONER for r in node.reasoners}
        targets.update({s.id: TargetKind.SKILL for s in node.skills})
        for name in targets:
            parse_target(f"{node.id}.{name}")
        await self._claim_id(node.id, identity)
        now = now_ms()
        k = self.keys
        async with self.redis.pipeline(transaction=True) as tx:
            # Read inside the transaction, before the write: the instance registered until now.
            tx.hget(k.node(node.id), "instance_id")
            tx.delete(k.node_targets(node.id))
            if targets:
                tx.hset(k.node_targets(node.id), mapping=targets)
                tx.expire(k.node_targets(node.id), NODE_TTL_S)
            tx.hset(
                k.node(node.id),
                mapping={
                    "id": node.id,
                    "base_url": base_url,
                    "version": node.version,
                    "record": body,
                    "registered_at": rfc3339(now),
                    "last_heartbeat_ms": now,
                    "last_heartbeat_at": rfc3339(now),
                    "agent_status": "ready",
                    "instance_id": node.instance_id,
                    "on_restart": node.on_restart,
                    "call_timeout_s": "" if node.call_timeout_s is None else node.call_timeout_s,
                    "retry_safe": "1" if node.retry_safe else "",
                },
            )
            if node.max_in_flight is None:
                tx.hdel(k.node(node.id), "max_in_flight")
            else:
                tx.hset(k.node(node.id), "max_in_flight", str(node.max_in_flight))
            tx.expire(k.node(node.id), NODE_TTL_S)
            tx.sadd(k.nodes, node.id)
            replies = await tx.execute()
        previous = replies[0].decode() if replies[0] else ""
        restarted = bool(previous and node.instance_id and previous != node.instance_id)
        logger.info(
            "registered node_id=%s base_url=%s targets=%d restarted=%s",
            node.id, base_url, len(targets), restarted,
        )  # fmt: skip
        return Registered(base_url=base_url, restarted=restarted)

    async def _claim_id(self, node_id: str, identity: Identity) -> None:
        k = self.keys
        claim = await self._claim(
            keys=[k.node_owner(node_id), k.api_key(identity.digest)],
            args=[identity.key_id, node_id, "1" if identity.is_admin else "0"],
        )
        if text(claim) == "owned":
            raise NodeOwned(f"node '{node_id}' belongs to another agent key; nothing was changed")
        if text(claim) == "claimed":
            logger.info("node_id=%s now owned by key %s", node_id, identity.key_id)

    async def check_owner(self, node_id: str, identity: Identity) -> None:
        """NodeOwned unless the key owns the node, the node has no owner, or the key is an
        admin's. (Owners change only by a first registration or a revocation, so this check
        needs no script of its own around the write that follows it.)"""
        if identity.is_admin or not safe_id(node_id):
            return
        owner = await self.owners.get(self.keys.node_owner(node_id))
        if owner is not None and text(owner) != identity.key_id:
            raise NodeOwned(f"node '{node_id}' belongs to another agent key; nothing was changed")

    async def heartbeat(
        self, node_id: str, status: str | None, identity: Identity = ANONYMOUS_ADMIN
    ) -> str:
        """Refresh a node's lease (NodeOwned for another key's node); returns the time."""
        _check_id(node_id)
        await self.check_owner(node_id, identity)
        now = now_ms()
        stamp = rfc3339(now)
        k = self.keys
        found = await self._heartbeat(
            keys=[k.node(node_id), k.node_targets(node_id)],
            args=[now, stamp, NODE_TTL_S, status or ""],
        )
        if not found:
            raise NodeNotFound(f"node '{node_id}' is not registered")
        return stamp

    async def stop(self, node_id: str, identity: Identity = ANONYMOUS_ADMIN) -> None:
        """The node said goodbye: keep its record, report it inactive until it registers again."""
        await self.heartbeat(node_id, STOPPED, identity)

    async def base_url(self, node_id: str) -> str | None:
        """Where the node listens now (it may have re-registered since the execution was queued)."""
        if not safe_id(node_id):
            return None
        url: bytes | None = await self.redis.hget(self.keys.node(node_id), "base_url")  # type: ignore[misc]  # redis-py's async stubs
        return url.decode() if url else None

    async def dispatch(self, node_id: str) -> Dispatch | None:
        """How to call the node now (it may have re-registered since the execution was
        queued), or None when it is not registered."""
        if not safe_id(node_id):
            return None
        values = await self.redis.hmget(self.keys.node(node_id), DISPATCH_FIELDS)  # type: ignore[misc]  # redis-py's async stubs
        return self.dispatch_of(values)

    def dispatch_of(self, values: list[bytes | None]) -> Dispatch | None:
        """`dispatch` from the node's `DISPATCH_FIELDS`, as read (claim.lua reads them too)."""
        url, heard, status, timeout, safe = values
        if not url:
            return None
        return Dispatch(
            base_url=url.decode(),
            live=self._live(int(heard or 0), (status or b"").decode()),
            timeout_s=float(timeout) if timeout else None,
            retry_safe=bool(safe),
        )

    def _live(self, last_heartbeat_ms: int, agent_status: str) -> bool:
        return (
            agent_status not in DOWN_STATUSES
            and now_ms() - last_heartbeat_ms <= self.settings.node_lease_s * 1000
        )

    async def get(self, node_id: str) -> dict[str, Any]:
        """One node's record as the API shows it."""
        _check_id(node_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.node(node_id))
            pipe.get(self.keys.node_owner(node_id))
            raw, owner = await pipe.execute()
        if not raw:
            raise NodeNotFound(f"node '{node_id}' is not registered")
        return self._view(raw, owner)

    async def list(self) -> list[dict[str, Any]]:
        """Every registered node, forgetting ids whose records have expired."""
        ids = sorted(i.decode() for i in await self.redis.smembers(self.keys.nodes))  # type: ignore[misc]  # redis-py's async stubs
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self.keys.node(node_id))
                pipe.get(self.keys.node_owner(node_id))
            replies = await pipe.execute()
        records, owners = replies[::2], replies[1::2]
        gone = [node_id for node_id, raw in zip(ids, records, strict=True) if not raw]
        if gone:
            await self._forget(keys=[self.keys.nodes, *map(self.keys.node, gone)], args=gone)
        return [self._view(raw, owner) for raw, owner in zip(records, owners, strict=True) if raw]

    def _view(self, raw: dict[bytes, bytes], owner: bytes | None) -> dict[str, Any]:
        fields = {k.decode(): v for k, v in raw.items()}
        view: dict[str, Any] = any_decoder.decode(fields["record"])
        agent_status = fields.get("agent_status", b"").decode()
        heard_ms = int(fields["last_heartbeat_ms"])
        alive = self._live(heard_ms, agent_status)
        view.update(
            id=fields["id"].decode(),
            base_url=fields["base_url"].decode(),
            registered_at=fields["registered_at"].decode(),
            last_heartbeat=fields["last_heartbeat_at"].decode(),
            lease_expires_at=rfc3339(heard_ms + round(self.settings.node_lease_s * 1000)),
            owner=text(owner) if owner else "",
            status="active" if alive else "inactive",
            health_status="healthy" if alive else "inactive",
            agent_status=agent_status,
        )
        return view


def _check_id(node_id: str) -> None:
    """An id that cannot be a node's (one with ':' could name another key) is simply unknown."""
    if not safe_id(node_id):
        raise NodeNotFound(f"node '{node_id[:128]}' is not registered")


def read_base_url(url: str) -> str:
    """A node's base URL in its canonical spelling (`kernel/urls.py`), refused as well if the
    workers' HTTP client could not call it: what is stored never crashes a job."""
    canonical = parse_base_url(url)
    try:
        httpx.URL(f"{canonical}/reasoners/x").host  # noqa: B018 - raises on what httpx refuses
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise InvalidBaseUrl(f"base_url: the workers' HTTP client cannot use it ({exc})") from exc
    return canonical
