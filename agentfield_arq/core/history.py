"""What is stored of one execution beyond its status document: its input as submitted and its
history, the lifecycle steps the transition scripts record beside each stream entry (see
`record_history` in lua/common.lua). The lifecycle stream itself is shared and capped; the
history lasts as long as the execution."""

from __future__ import annotations

import msgspec

from agentfield_arq.core.credentials import Identity
from agentfield_arq.core.keys import safe_id
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import rfc3339, text
from agentfield_arq.kernel.models import History, HistoryEntry

_entry = msgspec.json.Decoder(HistoryEntry)


async def read_input(store: ExecutionStore, execution_id: str, owner: Identity) -> bytes | None:
    """The execution's input (JSON, as stored), or None when `owner` may not see it."""
    if not safe_id(execution_id):
        return None
    names = ["input", "owner"]
    found, owned_by = await store.redis.hmget(store.keys.execution(execution_id), names)  # type: ignore[misc]  # redis-py's async stubs
    if found is None or not (owner.is_admin or text(owned_by) == owner.key_id):
        return None
    value: bytes = found
    return value


async def read_history(store: ExecutionStore, execution_id: str, owner: Identity) -> History | None:
    """The execution's history, oldest first, or None when `owner` may not see it."""
    if not safe_id(execution_id):
        return None
    k = store.keys
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hget(k.execution(execution_id), "owner")  # every record has one
        pipe.lrange(k.history(execution_id), 0, -1)
        owned_by, raw = await pipe.execute()
    if owned_by is None or not (owner.is_admin or text(owned_by) == owner.key_id):
        return None
    entries = [_entry.decode(r) for r in raw]
    for e in entries:
        e.at = rfc3339(e.ms)
    # The first entry is always kept; any gap is right after it.
    dropped = entries[1].n - 2 if len(entries) > 1 else 0
    ids = [e.id for e in entries if e.id is not None]
    return History(
        execution_id=execution_id,
        entries=entries,
        dropped=dropped,
        last_event_id=ids[-1] if ids else None,
    )
