"""Proof that a callback comes from the execution's node.

A report may settle an execution only if it shows one of: the per-dispatch token the worker
sent the agent with the execution (header `X-Callback-Token`, which our SDK echoes on its
callback), the agent key that owns the execution's node (AgentField's SDK sends its key as
`X-API-Key` on every request), or an admin key. For a node the operator lists in
AGENTFIELD_ARQ_UNPROVEN_CALLBACK_NODES, a report with none of these is still taken when it comes
from the address the node's `base_url` names: the weaker guarantee, for agents that can send no
key. Anything else is answered as an unknown execution is, and changes nothing.

The token is an HMAC of the execution id under a secret made once in Redis and shared by every
API and worker process, so that no token is stored anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from urllib.parse import urlsplit

from redis.asyncio import Redis

from agentfield_arq.core.credentials import Identity, Role
from agentfield_arq.core.keys import Keys, safe_id
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import text
from agentfield_arq.kernel.errors import ExecutionNotFound

TOKEN_HEADER = "X-Callback-Token"


class DispatchTokens:
    """Makes and checks per-dispatch callback tokens."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._secret: bytes | None = None

    async def _load(self, fresh: bool = False) -> bytes:
        if self._secret is None or fresh:
            stored = await self.redis.get(self.keys.dispatch_secret)
            if stored is None:  # the first process to need it makes it; every other one reads it
                await self.redis.set(self.keys.dispatch_secret, secrets.token_hex(32), nx=True)
                stored = await self.redis.get(self.keys.dispatch_secret)
            self._secret = text(stored).encode()
        return self._secret

    async def token(self, execution_id: str) -> str:
        """The token of one execution, sent to its agent with the call."""
        return _sign(await self._load(), execution_id)

    async def verify(self, execution_id: str, token: str) -> bool:
        """Whether `token` is this execution's (the secret is read again once on a mismatch,
        in case this process kept one that Redis has since lost)."""
        for fresh in (False, True):
            expected = _sign(await self._load(fresh), execution_id)
            if hmac.compare_digest(expected.encode(), token.encode()):
                return True
        return False


def _sign(secret: bytes, execution_id: str) -> str:
    mac = hmac.new(secret, f"callback:{execution_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


class CallbackProof:
    """Decides whether a report about an execution may be applied."""

    def __init__(self, redis: Redis, settings: Settings, owners: Redis | None = None) -> None:
        self.redis = redis
        # Node owners live beside the API keys (home, when routed; see NodeRegistry).
        self.owners = owners or redis
        self.keys = Keys(settings.key_prefix)
        self.tokens = DispatchTokens(redis, self.keys)
        self.unproven = frozenset(
            n.strip() for n in settings.unproven_callback_nodes.split(",") if n.strip()
        )

    async def check(
        self,
        execution_id: str,
        identity: Identity | None,
        token: str | None,
        client_host: str | None,
    ) -> None:
        """Return if the report may be applied; raise ExecutionNotFound otherwise."""
        missing = ExecutionNotFound(f"execution '{execution_id[:100]}' not found")
        if not safe_id(execution_id):
            raise missing
        raw: bytes | None = await self.redis.hget(self.keys.execution(execution_id), "node_id")  # type: ignore[misc]  # redis-py's async stubs
        if raw is None:
            raise missing
        node_id = text(raw)
        if token and await self.tokens.verify(execution_id, token):
            return
        if identity is not None and identity.is_admin:
            return
        if identity is not None and identity.role is Role.AGENT:
            owner = await self.owners.get(self.keys.node_owner(node_id))
            if owner is not None and text(owner) == identity.key_id:
                return
        if node_id in self.unproven and await self._from_node(node_id, client_host):
            return
        raise missing

    async def _from_node(self, node_id: str, client_host: str | None) -> bool:
        """Whether the request comes from an address the node's base_url host resolves to."""
        if not client_host:
            return False
        raw: bytes | None = await self.redis.hget(self.keys.node(node_id), "base_url")  # type: ignore[misc]  # redis-py's async stubs
        host = urlsplit(text(raw)).hostname if raw else None
        if not host:
            return False
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
            peer = _plain(client_host)
            return any(_plain(str(info[4][0])) == peer for info in infos)
        except (OSError, ValueError):
            return False


def _plain(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address, an IPv4-mapped IPv6 one as its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
