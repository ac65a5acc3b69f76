"""API keys: who a request comes from, and what its role allows.

A key is `afk_` and 43 random URL-safe characters, shown once when it is made; Redis keeps only
its SHA-256 (a key this random needs no slow hash), under which the key's id, role and owned
node ids are found. The same lookup counts the request against the key's rate.

An API process trusts a key it has found for `key_cache_s` (1 s) before it looks it up again,
so a revocation holds on every replica within that bound (at the next request with 0). Meanwhile
it counts the key's requests in Redis a block at a time (a hundredth of the rate, at least one):
one round trip per block instead of one per request. A block a process has not used up when the
second ends is lost, so with several replicas a key may be refused up to one block per replica
below its rate, never above it. The lookup was one more round trip per request: with a stored
caller key the enqueue throughput was 0.6 x that with the admin key (bench/, same run).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys, safe_id
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import now_ms, rfc3339, text
from agentfield_arq.kernel.errors import InvalidRequest, NodeOwned

KEY_PREFIX = "afk_"
_KEY_SHAPE = re.compile(r"afk_[A-Za-z0-9_-]{20,200}")
RATE_WINDOW_S = 1
# The id of the admin key a deployment provides in AGENTFIELD_ARQ_ADMIN_KEY: known from the
# environment, compared in memory, never stored (rotated by changing the variable).
BOOTSTRAP_KEY_ID = "admin"
# A process takes a key's rate from Redis in blocks of this share of it (see the docstring).
RATE_BLOCK_SHARE = 100
# Keys a process remembers at most (the oldest is forgotten first).
MAX_CACHED_KEYS = 10_000


class Role(enum.StrEnum):
    """What a key may do; each role may do all that the one before it may (see api/access.py)."""

    CALLER = "caller"
    AGENT = "agent"
    ADMIN = "admin"


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """The key a request was made with: its id (never the key itself), role and digest."""

    key_id: str
    role: Role
    digest: str = ""

    @property
    def is_admin(self) -> bool:
        """Whether this key may act on anything."""
        return self.role is Role.ADMIN


# What a request is treated as when auth is off (AGENTFIELD_ARQ_AUTH=false, loopback only), and
# what the core's in-process callers (tests, the bench, tools) act as unless they say otherwise.
ANONYMOUS_ADMIN = Identity(key_id="anonymous", role=Role.ADMIN)


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored key as `keys list` shows it (the key itself is not stored)."""

    id: str
    role: Role
    nodes: list[str]
    created_at: str
    name: str = ""


class Lookup(enum.Enum):
    """Why a presented key gave no identity."""

    UNKNOWN = "unknown"
    LIMITED = "limited"


def digest(plain: str) -> str:
    """The SHA-256 (hex) under which a key is stored."""
    return hashlib.sha256(plain.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def derived_key(secret: str, purpose: str) -> str:
    """A key that `secret` determines (the run command's agent keys, made from its admin key,
    so that each start finds the same keys without writing more files)."""
    mac = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()
    return KEY_PREFIX + mac


def well_formed(plain: str) -> bool:
    """Whether a presented value can be a key at all (it is not looked up otherwise)."""
    return _KEY_SHAPE.fullmatch(plain) is not None


class KeyStore:
    """Creation, lookup, listing and revocation of API keys in Redis."""

    def __init__(
        self, redis: Redis, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.rate_limit = settings.key_rate_limit
        self.cache_s = settings.key_cache_s
        self._clock = clock
        self._block = max(1, self.rate_limit // RATE_BLOCK_SHARE)
        # digest -> (trusted until, on `clock`), identity; digest -> (window, requests left)
        self._known: dict[str, tuple[float, Identity]] = {}
        self._allowance: dict[str, tuple[int, int]] = {}
        self._bootstrap = (
            Identity(key_id=BOOTSTRAP_KEY_ID, role=Role.ADMIN, digest=digest(settings.admin_key))
            if settings.admin_key
            else None
        )
        self._authenticate = load_script(redis, "authenticate")
        self._store = load_script(redis, "store_key")
        self._revoke = load_script(redis, "revoke_key")

    async def lookup(self, plain: str) -> Identity | Lookup:
        """The identity of a presented key, counting this request against its rate."""
        if not well_formed(plain):
            return Lookup.UNKNOWN
        found = digest(plain)
        if self._bootstrap is not None and hmac.compare_digest(found, self._bootstrap.digest):
            return self._bootstrap
        now = self._clock()
        known = self._known.get(found)
        if known is not None and known[0] > now:
            return await self._counted(known[1])
        return await self._looked_up(found, now)

    async def _looked_up(self, found: str, now: float) -> Identity | Lookup:
        """Ask Redis (counting this request), and trust the answer for `cache_s`."""
        window = now_ms() // (RATE_WINDOW_S * 1000)
        reply = await self._authenticate(
            keys=[self.keys.api_key(found), self.keys.api_key_rate(found, window)],
            args=[self.rate_limit, RATE_WINDOW_S * 2],
        )
        state = text(reply[0])
        if state != "ok":
            self._known.pop(found, None)
            return Lookup(state)
        flat = [text(v) for v in reply[1:]]
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        identity = Identity(key_id=fields["id"], role=Role(fields["role"]), digest=found)
        if self.cache_s > 0:
            self._known.pop(found, None)
            if len(self._known) >= MAX_CACHED_KEYS:
                del self._known[next(iter(self._known))]
            self._known[found] = (now + self.cache_s, identity)
        return identity

    async def _counted(self, identity: Identity) -> Identity | Lookup:
        """A known key's request, counted against its rate from this process's block."""
        if identity.is_admin or not self.rate_limit:
            return identity
        window = now_ms() // (RATE_WINDOW_S * 1000)
        held, left = self._allowance.get(identity.digest, (window, 0))
        if held != window or left <= 0:
            left = await self._take_block(identity.digest, window)
            if left <= 0:
                return Lookup.LIMITED
        if len(self._allowance) >= MAX_CACHED_KEYS and identity.digest not in self._allowance:
            self._allowance.clear()
        self._allowance[identity.digest] = (window, left - 1)
        return identity

    async def _take_block(self, found: str, window: int) -> int:
        """Count a block of the key's requests in this window; how many of it fit its rate."""
        counter = self.keys.api_key_rate(found, window)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(counter, self._block)
            pipe.expire(counter, RATE_WINDOW_S * 2)
            total, _ = await pipe.execute()
        return min(self._block, self.rate_limit - (int(total) - self._block))

    async def create(
        self, role: Role, nodes: Iterable[str] = (), name: str = ""
    ) -> tuple[KeyRecord, str]:
        """Make and store a new key; returns its record and the plain key (shown once)."""
        plain = new_key()
        record = await self.store(plain, role, "key_" + secrets.token_hex(6), nodes, name)
        return record, plain

    async def store(
        self, plain: str, role: Role, key_id: str, nodes: Iterable[str] = (), name: str = ""
    ) -> KeyRecord:
        """Store `plain` as key `key_id` (again: idempotent; a new key under an old id replaces
        the old one), claiming `nodes` for it; NodeOwned if another key owns one of them."""
        wanted = sorted(set(nodes))
        for node_id in wanted:
            if not safe_id(node_id):
                raise InvalidRequest(f"node: '{node_id[:128]}' is not a node id")
        if role is not Role.AGENT and wanted:
            raise InvalidRequest("nodes: only agent keys own node ids")
        k = self.keys
        record = KeyRecord(
            id=key_id, role=role, nodes=wanted, created_at=rfc3339(now_ms()), name=name
        )
        reply = await self._store(
            keys=[k.api_key(digest(plain)), k.api_keys, *map(k.node_owner, wanted)],
            args=[
                key_id,
                digest(plain),
                role,
                ",".join(wanted),
                record.created_at,
                name,
                k.api_key(""),
            ],
        )
        if text(reply[0]) == "owned":
            raise NodeOwned(f"node '{wanted[int(reply[1]) - 1]}' is owned by another key")
        return record

    async def list(self) -> list[KeyRecord]:
        """Every stored key, by id."""
        index = await self.redis.hgetall(self.keys.api_keys)  # type: ignore[misc]  # redis-py's async stubs
        ids = sorted(index, key=text)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(self.keys.api_key(text(index[key_id])))
            records = await pipe.execute()
        found = []
        for raw in records:
            if raw:
                fields = {text(k): text(v) for k, v in raw.items()}
                found.append(
                    KeyRecord(
                        id=fields["id"],
                        role=Role(fields["role"]),
                        nodes=_split(fields.get("nodes", "")),
                        created_at=fields.get("created_at", ""),
                        name=fields.get("name", ""),
                    )
                )
        return found

    async def names(self, key_ids: Iterable[str]) -> dict[str, str]:
        """The name of each stored key among `key_ids` that has one (two round trips)."""
        wanted = sorted(set(key_ids))
        if not wanted:
            return {}
        digests = await self.redis.hmget(self.keys.api_keys, wanted)  # type: ignore[misc]  # redis-py's async stubs
        known = [(i, text(d)) for i, d in zip(wanted, digests, strict=True) if d is not None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, found in known:
                pipe.hget(self.keys.api_key(found), "name")
            names = await pipe.execute()
        return {i: text(n) for (i, _), n in zip(known, names, strict=True) if n}

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key, freeing its node ids; False if there is none. This process refuses it
        at once, other API processes within their `key_cache_s`."""
        for found, (_, identity) in list(self._known.items()):
            if identity.key_id == key_id:
                del self._known[found]
        k = self.keys
        reply = await self._revoke(
            keys=[k.api_keys], args=[key_id, k.api_key(""), k.node_owner("")]
        )
        return bool(reply)


def _split(nodes: str) -> list[str]:
    return [n for n in nodes.split(",") if n]
