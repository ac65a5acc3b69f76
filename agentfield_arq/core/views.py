"""Status views: an execution's document with its webhook delivery fields and notes spliced in,
of one execution (GET) or many (batch-status, the list), read by MGET, with no script on the
common path (a script's argument and reply handling cost batch-status four times one MGET).

A key other than an admin's sees only the executions it submitted: the members of its own
index (`Keys.index_owner`, which create.lua fills in the same step as the record and whose
members no record outlives), so one ZMSCORE answers for a whole batch.

A bounded read (batch-status, the list) reads no more than it must, and never has Redis send a
large result. Two sorted sets say which executions need more than their document: finish.lua
names each terminal document over `batch_result_max_bytes` in `Keys.large_docs`, read through
batch_views.lua, which sends their head only; add_note.lua names the executions with notes in
`Keys.noted`. One pipeline asks both (and the owner's index); the next reads the documents, each
within the cap, and those notes by MGET; a third, only when a document says its execution
registered a webhook, reads those delivery fields. The answer's budget (`batch_max_bytes`) is
kept here as each document is added. A read of one execution (GET) takes all three parts of it
in one MGET.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.credentials import Identity
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import encode

# In a status document whose execution registered a webhook (build_doc writes it so).
HOOKED = b'"webhook_registered":true'


class Views:
    """Reads of status views, by execution id."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._summaries = load_script(redis, "batch_views")

    async def read(self, ids: list[str], owner: Identity, *, bounded: bool) -> dict[str, bytes]:
        """The views of those of `ids` (safe, distinct) that exist and `owner` may see; whole,
        or bounded in bytes (a large result left out: `result_truncated`, `result_size`)."""
        return await (self._bounded(ids, owner) if bounded else self._whole(ids, owner))

    async def _whole(self, ids: list[str], owner: Identity) -> dict[str, bytes]:
        """One round trip: the owner's index asked beside all three parts of each view."""
        async with self.redis.pipeline(transaction=False) as pipe:
            if not owner.is_admin:
                pipe.zmscore(self.keys.index_owner(owner.key_id), ids)
            pipe.mget([key for i in ids for key in self._parts(i)])
            replies = await pipe.execute()
        found = replies[-1]
        mine = ids if owner.is_admin else _members(ids, replies[0])
        at = {i: n for n, i in enumerate(ids)}
        return {
            i: splice(splice(doc, found[3 * at[i] + 1]), found[3 * at[i] + 2])
            for i in mine
            if (doc := found[3 * at[i]]) is not None
        }

    async def _bounded(self, ids: list[str], owner: Identity) -> dict[str, bytes]:
        mine, large, noted = await self._marks(ids, owner)
        if not mine:
            return {}
        docs, summarised, notes = await self._documents(mine, large, noted)
        # A webhook's delivery fields are kept only for an execution that registered one.
        hooked = [i for i, doc in docs.items() if HOOKED in doc] if _any_hooked(docs) else []
        views = await self.redis.mget([self.keys.webhook_view(i) for i in hooked]) if hooked else []
        webhooks = dict(zip(hooked, views, strict=True))
        return self._within_budget(mine, docs, summarised, webhooks, notes)

    async def _marks(self, ids: list[str], owner: Identity) -> tuple[list[str], set[str], set[str]]:
        """Of `ids`: those `owner` may see, those with a large document, those with notes."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(k.large_docs, ids)
            pipe.zmscore(k.noted, ids)
            if not owner.is_admin:
                pipe.zmscore(k.index_owner(owner.key_id), ids)
            marks = await pipe.execute()
        mine = ids if owner.is_admin else _members(ids, marks[2])
        return mine, set(_members(ids, marks[0])), set(_members(ids, marks[1]))

    async def _documents(
        self, ids: list[str], large: set[str], noted: set[str]
    ) -> tuple[dict[str, bytes], set[str], dict[str, bytes | None]]:
        """The documents found, those of them summarised (large ones, through batch_views.lua),
        and the notes views of those with notes."""
        k = self.keys
        small = [i for i in ids if i not in large] if large else ids
        big = [i for i in ids if i in large]
        with_notes = [i for i in ids if i in noted] if noted else []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([k.status_doc(i) for i in small] + [k.notes_view(i) for i in with_notes])
            if big:
                keys = [key for i in big for key in (k.status_doc(i), k.execution(i))]
                cap = self.settings.batch_result_max_bytes
                await self._summaries(keys=keys, args=[cap], client=pipe)
            replies = await pipe.execute()
        found: list[bytes | None] = replies[0]
        docs = {i: doc for i, doc in zip(small, found[: len(small)], strict=True) if doc}
        summarised: set[str] = set()
        if big:
            summaries: list[Any] = replies[1]
            for i, doc, cut in zip(big, summaries[::2], summaries[1::2], strict=True):
                if doc:
                    docs[i] = doc
                if cut == 1:
                    summarised.add(i)
        return docs, summarised, dict(zip(with_notes, found[len(small) :], strict=True))

    def _within_budget(
        self,
        ids: list[str],
        docs: dict[str, bytes],
        summarised: set[str],
        webhooks: dict[str, bytes | None],
        notes: dict[str, bytes | None],
    ) -> dict[str, bytes]:
        """In the order asked: a document within the cap and the budget left counts against
        the budget and goes whole; any other goes without its result (a summary, counted
        against nothing). Notes go while the budget holds them."""
        cap = self.settings.batch_result_max_bytes
        budget = self.settings.batch_max_bytes
        sizes = [len(doc) for doc in docs.values()]
        if (
            not (summarised or webhooks or notes)
            and sum(sizes) <= budget
            and max(sizes, default=0) <= cap
        ):
            return docs  # the common case: every document whole, nothing to splice in
        out: dict[str, bytes] = {}
        for i in ids:
            doc = docs.get(i)
            if doc is None:
                continue
            if i not in summarised:
                if len(doc) <= cap and len(doc) <= budget:
                    budget -= len(doc)
                else:
                    doc = without_result(doc)
            note = notes.get(i)
            if note is not None:
                if len(note) <= budget:
                    budget -= len(note)
                else:
                    note = None
            out[i] = splice(splice(doc, webhooks.get(i)), note)
        return out

    def _parts(self, execution_id: str) -> tuple[str, str, str]:
        k = self.keys
        return (
            k.status_doc(execution_id),
            k.webhook_view(execution_id),
            k.notes_view(execution_id),
        )


def _any_hooked(docs: dict[str, bytes]) -> bool:
    """Whether any of the documents says its execution registered a webhook (one search)."""
    return HOOKED in b"".join(docs.values())


def _members(ids: list[str], scores: list[float | None]) -> list[str]:
    """Those of `ids` that ZMSCORE found in its set."""
    return [i for i, score in zip(ids, scores, strict=True) if score is not None]


def without_result(doc: bytes) -> bytes:
    """A status document without its result: `result_truncated` and the result's size in
    bytes (`result_size`) in its place; a document without one, as it is."""
    members = msgspec.json.decode(doc, type=dict[str, msgspec.Raw])
    result = members.pop("result", None)
    if result is None:
        return doc
    return encode({**members, "result_truncated": True, "result_size": len(result)})


def splice(doc: bytes, view: bytes | None) -> bytes:
    """Join the members of a view object (webhook delivery fields, notes) into the status
    document object, so that neither (nor the result inside the document) is decoded and
    encoded again."""
    if not view:
        return doc
    return doc[:-1] + b"," + view[1:]
