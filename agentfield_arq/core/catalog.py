"""Listing executions and drawing run trees, from the indexes the transition scripts keep.

Each index is a sorted set of execution ids with every score 0 (`keys.py`): members sort by id,
and ids sort by creation time, so one `ZREVRANGEBYLEX` reads a page newest first, the cursor is
the last id read (stable: a new execution sorts before it, never inside a page already read),
and `since`/`until` are id bounds (`id_floor`). One index is read per request, the narrowest
the filters name (run, parent, target, a status but succeeded, else the global one); the other
filters are checked on the status documents, which are fetched for the page anyway, with a
bounded number of members examined per request. A node's filter and succeeded have no index of
their own, to save memory: succeeded is most of what is retained, so its scan of the global
index is dense, and `target` narrows a node's. A member whose record has expired is dropped
from the index it was read from, and from the global one, as it is met.

A run has no index while its only execution is the one that started it (`keys.own_run_id`): its
run's reads take that root from the run id (`keys.run_root`) beside the run's index.

A key other than an admin's reads its own index (`Keys.index_owner`, written by create.lua for
such keys only) and nothing else, its other filters checked on the documents, so that no other
key's execution is ever examined for it: none can show in its pages, and its cursor is always
one of its own ids. Its run is the intersection of the run's index with its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.keys import run_root
from agentfield_arq.core.routing import merged_page
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import id_floor, text
from agentfield_arq.kernel.models import Run, RunNode
from agentfield_arq.kernel.status import TERMINAL_STATUSES, Status

# Statuses without an index (lua/common.lua's UNINDEXED_STATUS): read from the global index.
UNINDEXED = frozenset({Status.SUCCEEDED})
# Members examined per list request, at most: a page whose filters match rarely comes back
# short, with a cursor to go on from, rather than scanning the whole index.
SCAN_BUDGET = 2000
RUN_MAX = 1000


class _Facts(msgspec.Struct, kw_only=True):
    """What the filters look at in a status document."""

    status: str
    target: str = ""
    run_id: str = ""
    parent_execution_id: str | None = None


class _Id(msgspec.Struct):
    """A status document's id, alone."""

    execution_id: str


_facts = msgspec.json.Decoder(_Facts)
_id = msgspec.json.Decoder(_Id)
_node = msgspec.json.Decoder(RunNode)


@dataclass(frozen=True, slots=True)
class Filters:
    """The list route's query; None means no condition. Times are unix ms, inclusive."""

    status: str | None = None
    target: str | None = None
    node: str | None = None
    run_id: str | None = None
    parent: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def admit(self, facts: _Facts) -> bool:
        """Whether a document passes every condition (the index read may already imply one)."""
        return (
            (self.status is None or facts.status == self.status)
            and (self.target is None or facts.target == self.target)
            and (self.node is None or facts.target.partition(".")[0] == self.node)
            and (self.run_id is None or facts.run_id == self.run_id)
            and (self.parent is None or facts.parent_execution_id == self.parent)
        )


@dataclass(frozen=True, slots=True)
class Page:
    """Status documents (as stored, webhook fields spliced in), newest first, and the cursor."""

    docs: list[bytes]
    next_cursor: str | None


def merge(pages: list[Page], limit: int) -> Page:
    """One page of the pages that several Redis answered for the same query and cursor
    (core/routing.py `merged_page`): newest first, up to `limit`, the cursor one id."""
    keyed = [
        ([(_id.decode(doc).execution_id, doc) for doc in p.docs], p.next_cursor) for p in pages
    ]
    docs, cursor = merged_page(keyed, limit)
    return Page(docs, cursor)


class Catalog:
    """Reads over the execution indexes."""

    def __init__(self, store: ExecutionStore) -> None:
        self.store = store
        self.keys = store.keys
        self.redis: Redis = store.redis

    def index_of(self, f: Filters, viewer: Identity = ANONYMOUS_ADMIN) -> str:
        """The narrowest index the filters allow (for a key other than an admin's, its own)."""
        k = self.keys
        if not viewer.is_admin:
            return k.index_owner(viewer.key_id)
        if f.run_id is not None:
            return k.index_run(f.run_id)
        if f.parent is not None:
            return k.index_parent(f.parent)
        if f.target is not None:
            return k.index_target(f.target)
        if f.status is not None and f.status not in UNINDEXED:
            return k.index_status(f.status)
        return k.index_all

    async def page(
        self,
        f: Filters,
        limit: int,
        cursor: str | None = None,
        viewer: Identity = ANONYMOUS_ADMIN,
    ) -> Page:
        """Up to `limit` executions passing `f` that `viewer` may see, newest first, after
        `cursor`."""
        index = self.index_of(f, viewer)
        high = "+" if f.until_ms is None else "(" + id_floor("exec", f.until_ms + 1)
        if cursor is not None:
            high = "(" + cursor
        low = "-" if f.since_ms is None else "[" + id_floor("exec", f.since_ms)
        # The run's root, oldest of its executions, comes after its index's members.
        reads_run = f.run_id is not None and index == self.keys.index_run(f.run_id)
        root = run_root(f.run_id) if f.run_id is not None and reads_run else None
        docs: list[bytes] = []
        examined = 0
        last: str | None = None
        while examined < SCAN_BUDGET:
            batch = min(max(2 * (limit - len(docs)), 50), SCAN_BUDGET - examined)
            ids = [text(m) for m in await self.redis.zrevrangebylex(index, high, low, 0, batch)]
            if root is not None and (root in ids or not _within(root, low, high)):
                root = None
            if root is not None and len(ids) < batch:
                ids.append(root)
            if not ids:
                return Page(docs, None)
            examined += len(ids)
            gone: list[str] = []
            views = await self.store.get_views(ids, viewer)
            for execution_id, doc in zip(ids, views, strict=True):
                last = execution_id
                if doc is None:
                    if execution_id != root:
                        gone.append(execution_id)
                elif f.admit(_facts.decode(doc)):
                    docs.append(doc)
                    if len(docs) == limit:
                        break
            await self._forget(index, gone)
            if len(docs) == limit:
                return Page(docs, last)
            if len(ids) < batch:
                return Page(docs, None)
            high = "(" + ids[-1]
        return Page(docs, last)

    async def run(self, run_id: str, viewer: Identity = ANONYMOUS_ADMIN) -> Run | None:
        """The run's executions that `viewer` may see (the oldest `RUN_MAX`) as a tree, or None
        if none is left."""
        return tree(run_id, *await self.run_nodes(run_id, viewer))

    async def run_nodes(
        self, run_id: str, viewer: Identity = ANONYMOUS_ADMIN
    ) -> tuple[list[RunNode], bool]:
        """The run's executions kept here that `viewer` may see (the oldest `RUN_MAX`, oldest
        first), and whether there are more."""
        index = self.keys.index_run(run_id)
        if viewer.is_admin:
            found = await self.redis.zrangebylex(index, "-", "+", 0, RUN_MAX + 1)
        else:  # all scores are 0: the intersection comes ordered by id
            found = await self.redis.zinter([index, self.keys.index_owner(viewer.key_id)])
        ids = [text(m) for m in found[: RUN_MAX + 1]]
        root = run_root(run_id)
        if root is not None and root not in ids:
            ids.insert(0, root)  # the oldest: it started the run
        truncated = len(ids) > RUN_MAX
        ids = ids[:RUN_MAX]
        nodes: list[RunNode] = []
        gone: list[str] = []
        for execution_id, doc in zip(ids, await self.store.get_views(ids, viewer), strict=True):
            if doc is None:
                if execution_id != root:  # a root is in no index: none to drop it from
                    gone.append(execution_id)
            elif execution_id != root or _facts.decode(doc).run_id == run_id:
                nodes.append(_node.decode(doc))
        await self._forget(index, gone)
        return nodes, truncated

    async def _forget(self, index: str, gone: list[str]) -> None:
        """Drop members whose records have expired (they are never shown)."""
        if gone:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(index, *gone)
                pipe.zrem(self.keys.index_all, *gone)
                await pipe.execute()


def _within(member: str, low: str, high: str) -> bool:
    """Whether `member` lies in a ZRANGEBYLEX range (`-`, `+`, `[` inclusive, `(` exclusive)."""
    above = low == "-" or (member >= low[1:] if low[0] == "[" else member > low[1:])
    below = high == "+" or (member <= high[1:] if high[0] == "[" else member < high[1:])
    return above and below


def tree(run_id: str, nodes: list[RunNode], truncated: bool) -> Run | None:
    """The run of these executions (oldest first), or None if there are none."""
    if not nodes:
        return None
    return Run(
        run_id=run_id,
        status=_run_status(nodes),
        count=len(nodes),
        truncated=truncated,
        roots=draw_tree(nodes),
    )


def merged_run(run_id: str, parts: list[tuple[list[RunNode], bool]]) -> Run | None:
    """The run whose executions several Redis hold (core/routing.py), each one's part read
    by `Catalog.run_nodes`: one tree, so that a child on one Redis is drawn under its parent
    on another; the oldest `RUN_MAX` of them all."""
    nodes = sorted((n for part, _ in parts for n in part), key=lambda n: n.execution_id)
    truncated = len(nodes) > RUN_MAX or any(more for _, more in parts)
    return tree(run_id, nodes[:RUN_MAX], truncated)


def draw_tree(nodes: list[RunNode]) -> list[RunNode]:
    """Link each execution under its parent, oldest first; orphans are roots. Headers are the
    callers' own, so they may draw a cycle: its oldest member becomes a root too."""
    by_id = {n.execution_id: n for n in nodes}
    roots: list[RunNode] = []
    for n in nodes:
        parent = by_id.get(n.parent_execution_id or "")
        if parent is None or parent is n:
            roots.append(n)
        else:
            parent.children.append(n)
    root_ids = {r.execution_id for r in roots}
    seen: set[str] = set()
    for n in [*roots, *nodes]:
        if n.execution_id in seen:
            continue
        if n.execution_id not in root_ids:  # unreachable from every root: in a cycle
            siblings = by_id[n.parent_execution_id or ""].children
            siblings[:] = [c for c in siblings if c is not n]
            roots.append(n)
        stack = [n]
        while stack:
            node = stack.pop()
            seen.add(node.execution_id)
            stack.extend(c for c in node.children if c.execution_id not in seen)
    return roots


def _run_status(nodes: list[RunNode]) -> str:
    if any(n.status not in TERMINAL_STATUSES for n in nodes):
        return Status.RUNNING
    if all(n.status == Status.SUCCEEDED for n in nodes):
        return Status.SUCCEEDED
    return Status.FAILED
