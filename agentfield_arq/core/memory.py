"""Memory in Redis: AgentField's scoped key-value store, and how a request's scope is found.

Each scope is one hash (`Keys.memory`) whose fields are the keys and whose values are JSON
records, so `redis-cli HGETALL af:mem:global:global` shows them. Writes are Lua scripts that
keep the first write's `created_at`, refuse a new key past the scope's cap, refresh the scope's
expiry and append the change to the memory event stream in the same step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.keys import MEMORY_EVENTS_MAXLEN, MEMORY_KEY_MAX_BYTES, Keys
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import canonical_json, encode, now_ms, rfc3339, text
from agentfield_arq.kernel.errors import (
    InvalidRequest,
    MemoryNotFound,
    MemoryScopeFull,
    MemoryValueTooLarge,
)
from agentfield_arq.kernel.memory import (
    GLOBAL,
    LOOKUP_ORDER,
    SCOPE_HEADERS,
    SCOPES,
)

_ID = re.compile(r"[\x20-\x7e]{1,256}")


class Scope(msgspec.Struct, frozen=True):
    """A resolved scope: its name and its id."""

    name: str
    id: str


def scope_id(headers: Mapping[str, str], name: str) -> str | None:
    """The id of scope `name` carried by the request's headers (None when absent)."""
    if name not in SCOPES:
        raise InvalidRequest(f"scope: must be one of {', '.join(SCOPES)}, got '{name[:64]}'")
    if name == GLOBAL:
        return GLOBAL
    value = headers.get(SCOPE_HEADERS[name]) or None
    if value is not None and not _ID.fullmatch(value):
        raise InvalidRequest(
            f"header {SCOPE_HEADERS[name]}: 1 to 256 printable ASCII characters, for scope {name}"
        )
    return value


def resolve(headers: Mapping[str, str], explicit: str | None) -> Scope:
    """The scope a write (or a scoped read) addresses: the one named, whose header must then be
    present (else 404: there is no such scope), or else the most specific one the headers carry
    (global without any)."""
    if explicit is not None:
        found = scope_id(headers, explicit)
        if found is None:
            # Without its id there is no such scope to read or write.
            raise MemoryNotFound(
                f"scope {explicit}: no {SCOPE_HEADERS[explicit]} header names its id"
            )
        return Scope(explicit, found)
    for name in LOOKUP_ORDER:
        found = scope_id(headers, name)
        if found is not None:
            return Scope(name, found)
    raise AssertionError("the global scope always resolves")  # pragma: no cover


def lookup(headers: Mapping[str, str]) -> list[Scope]:
    """The scopes a read without a scope walks, most specific first, ending with global."""
    scopes = []
    for name in LOOKUP_ORDER:
        found = scope_id(headers, name)
        if found is not None:
            scopes.append(Scope(name, found))
    return scopes


def ttl(settings: Settings, scope: Scope) -> str:
    """The expiry a write gives its scope's keys ('' for the global scope, which never expires)."""
    return "" if scope.name == GLOBAL else str(settings.memory_scope_ttl_s)


def check_key(key: str) -> None:
    """Refuse an empty or overlong memory (or vector) key."""
    if not key or len(key.encode()) > MEMORY_KEY_MAX_BYTES:
        raise InvalidRequest(f"key: 1 to {MEMORY_KEY_MAX_BYTES} bytes, got {len(key.encode())}")


class MemoryStore:
    """Key-value memory, per scope."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self._set = load_script(redis, "memory_set")
        self._delete = load_script(redis, "memory_delete")

    async def set(self, scope: Scope, key: str, data: bytes, who: Mapping[str, str]) -> bytes:
        """Store `data` (JSON) under `key`; returns the stored record."""
        check_key(key)
        data = canonical_json(data)
        cap = self.settings.memory_max_value_bytes
        if len(data) > cap:
            raise MemoryValueTooLarge(f"data: {len(data)} bytes of JSON, the cap is {cap}")
        now = rfc3339(now_ms())
        tail = (
            (
                f',"updated_at":"{now}","key":{encode(key).decode()},"scope":"{scope.name}",'
                f'"scope_id":{encode(scope.id).decode()},"data":'
            ).encode()
            + data
            + b"}"
        )
        reply = await self._set(
            keys=[self.keys.memory(scope.name, scope.id), self.keys.memory_events],
            args=[
                key,
                tail,
                now,
                self.settings.memory_max_keys_per_scope,
                ttl(self.settings, scope),
                MEMORY_EVENTS_MAXLEN,
                scope.name,
                scope.id,
                data,
                who.get("x-actor-id", ""),
                who.get("x-workflow-id", ""),
                who.get("x-agent-node-id", ""),
            ],
        )
        if text(reply[0]) == "full":
            raise MemoryScopeFull(
                f"scope {scope.name} '{scope.id[:64]}' holds "
                f"{self.settings.memory_max_keys_per_scope} keys, its cap; delete some first"
            )
        record: bytes = reply[1]
        return record

    async def get(self, scopes: list[Scope], key: str) -> bytes:
        """The record of `key` in the first of `scopes` that holds it."""
        check_key(key)
        async with self.redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.hget(self.keys.memory(scope.name, scope.id), key)
            found = await pipe.execute()
        for record in found:
            if record is not None:
                value: bytes = record
                return value
        where = ", ".join(s.name for s in scopes)
        raise MemoryNotFound(f"memory key '{key[:100]}' not found in scope {where}")

    async def delete(self, scope: Scope, key: str, who: Mapping[str, str]) -> bool:
        """Delete `key` from `scope`; False when it was not there."""
        check_key(key)
        reply = await self._delete(
            keys=[self.keys.memory(scope.name, scope.id), self.keys.memory_events],
            args=[
                key,
                rfc3339(now_ms()),
                MEMORY_EVENTS_MAXLEN,
                scope.name,
                scope.id,
                who.get("x-actor-id", ""),
                who.get("x-workflow-id", ""),
                who.get("x-agent-node-id", ""),
            ],
        )
        return text(reply[0]) == "ok"

    async def list_scope(self, scope: Scope) -> list[bytes]:
        """Every record of `scope`, sorted by key (at most the scope's cap of them)."""
        entries = await self.redis.hgetall(self.keys.memory(scope.name, scope.id))  # type: ignore[misc]  # redis-py's async stubs
        return [entries[k] for k in sorted(entries)]
