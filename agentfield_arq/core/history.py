"""What is stored of one execution beyond its status document: its input as submitted and its
history, the lifecycle steps the transition scripts record beside each stream entry (see
`record_history` in lua/common.lua). The lifecycle stream itself is shared and capped; the
history lasts as long as the execution."""

from __future__ import annotations

from typing import Any

import msgspec

from agentfield_arq.core.credentials import Identity
from agentfield_arq.core.keys import safe_id
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import rfc3339, text
from agentfield_arq.kernel.models import History, HistoryEntry


class Stored(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One history entry as `record_history` (lua/common.lua) stores it: the stream entry's id,
    or the time (`ms`) of a step that wrote none; the first entry counts those dropped after it
    (`dropped`). Entries stored before numbered themselves (`n`) and always had `ms`."""

    status: str
    id: str | None = None
    ms: int | None = None
    n: int | None = None
    dropped: int | None = None
    attempt: int | None = None
    worker: str | None = None
    reason: str | None = None
    message: str | None = None
    progress: Any = None


_stored = msgspec.json.Decoder(Stored)


def entries(raw: list[bytes]) -> tuple[list[HistoryEntry], int]:
    """A stored history's entries, numbered (every step ever written has its number, the ones
    dropped too), and how many were dropped after the first."""
    stored = [_stored.decode(r) for r in raw]
    if not stored:
        return [], 0
    first = stored[0]
    dropped = first.dropped or 0
    if first.dropped is None and len(stored) > 1 and stored[1].n is not None:
        dropped = stored[1].n - 2
    out: list[HistoryEntry] = []
    n = 0
    for i, e in enumerate(stored):
        n = e.n if e.n is not None else (n + 1 + (dropped if i == 1 else 0))
        ms = e.ms if e.ms is not None else int((e.id or "0").partition("-")[0])
        out.append(
            HistoryEntry(
                n=n,
                ms=ms,
                at=rfc3339(ms),
                status=e.status,
                id=e.id,
                attempt=e.attempt,
                worker=e.worker,
                reason=e.reason,
                message=e.message,
                progress=e.progress,
            )
        )
    return out, dropped


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
    numbered, dropped = entries(raw)
    ids = [e.id for e in numbered if e.id is not None]
    return History(
        execution_id=execution_id,
        entries=numbered,
        dropped=dropped,
        last_event_id=ids[-1] if ids else None,
    )
