"""Routing: which Redis deployment holds a node's executions, and which holds an execution id.

arq has no Redis Cluster support (one queue is one sorted set, and its job protocol's WATCH /
MULTI spans keys that no hash tag could keep in one slot), so a deployment that outgrows one
primary spreads its nodes over several Redis deployments instead, each a whole system of its
own (queue, lifecycle stream, records, workers), with a routing table that every API and
worker reads:

    AGENTFIELD_ARQ_REDIS_SHARDS="1=redis://10.0.0.2:6379/0 2=redis+sentinel://s1:26379/east/0"
    AGENTFIELD_ARQ_REDIS_ROUTES="finance=1,research=1,analytics=2"

A shard is named by one character of the ids' alphabet other than `0` (`1`-`9`, `a`-`z`
without `i`, `l`, `o`, `u`); `0` is the home Redis, `AGENTFIELD_ARQ_REDIS_URL`, which also
holds the API keys and memory, and every node that the routes do not name.

With shards configured, the last character of every new execution id names the Redis that
holds it (the id keeps its format: 26 characters of the alphabet, time first), so that any
API process finds an execution in one step, whatever the routes say later: moving a node to
another shard moves its new executions, and its old ones are still found where they are.
An id whose named shard does not hold it was made before the routes were set (its last
character is random): it is looked up on home.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from agentfield_arq.core.sentinel import sentinel_address
from agentfield_arq.kernel.errors import ConfigurationError
from agentfield_arq.kernel.targets import NODE_ID

HOME = "0"
# The ids' alphabet (Crockford's base32, kernel/codec.py) without the home's `0`.
CODES = "123456789abcdefghjkmnpqrstvwxyz"
_EXECUTION_ID = re.compile(r"exec_[0-9a-hjkmnp-tv-z]{26}")
_NODE = re.compile(NODE_ID)
T = TypeVar("T")
SHARDS_VAR = "AGENTFIELD_ARQ_REDIS_SHARDS"
# A status document's members, each left as its JSON text.
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
ROUTES_VAR = "AGENTFIELD_ARQ_REDIS_ROUTES"


class Routes(msgspec.Struct, frozen=True, kw_only=True):
    """The routing table: each shard's Redis URL by its code (home's `0` included), and the
    shard of each node the table names. One shard only: routing is off, ids are not stamped."""

    urls: dict[str, str]
    nodes: dict[str, str] = {}

    @property
    def routed(self) -> bool:
        """Whether there is more than the home Redis."""
        return len(self.urls) > 1

    def of_node(self, node_id: str) -> str:
        """The shard that takes `node_id`'s new executions (home unless the table names it)."""
        return self.nodes.get(node_id, HOME)

    def of_id(self, execution_id: str) -> str:
        """The shard an execution id names (home for an id of another form or shard)."""
        if not self.routed or _EXECUTION_ID.fullmatch(execution_id) is None:
            return HOME
        code = execution_id[-1]
        return code if code in self.urls else HOME


def merged_page(
    pages: Sequence[tuple[Sequence[tuple[str, T]], str | None]], limit: int
) -> tuple[list[T], str | None]:
    """One page, newest first, of the pages several Redis answered for the same query and
    cursor: each its `(key, item)` pairs, keys descending, and the key its scan stopped at
    (included; None: it reached the end). Below the highest of those keys some Redis has not
    looked yet, so the page stops there and goes on from there, or from its own last key."""
    floor = max((stop for _, stop in pages if stop is not None), default="")
    found = sorted(
        (pair for items, _ in pages for pair in items if pair[0] >= floor),
        key=lambda pair: pair[0],
        reverse=True,
    )
    if len(found) > limit:
        return [item for _, item in found[:limit]], found[limit - 1][0]
    return [item for _, item in found], floor or None


def merged_nodes(
    routes: Routes, parts: Sequence[tuple[str, Sequence[dict[str, Any]]]]
) -> list[dict[str, Any]]:
    """The node views that several Redis listed (each `(code, views)`), one per node id, by id:
    a node found on a Redis that no longer takes it (the routes changed) is shown from the one
    that does."""
    merged: dict[str, dict[str, Any]] = {}
    for code, views in parts:
        for view in views:
            if view["id"] not in merged or routes.of_node(view["id"]) == code:
                merged[view["id"]] = view
    return [merged[node_id] for node_id in sorted(merged)]


def within_budget(docs: Sequence[bytes | None], budget: int) -> list[bytes | None]:
    """The documents of one batch-status answer that several Redis made, each bounding its own
    part by the whole `budget` (batch_views.lua), bounded together in the order asked: each
    document is counted as sent (its webhook fields, notes and summaries too), and one that no
    longer fits what is left comes without its result (`result_truncated`, `result_size`, as
    batch_views.lua sends it) and its notes; one with neither comes as it is."""
    left = budget
    bounded: list[bytes | None] = []
    for doc in docs:
        if doc is not None and len(doc) > left:
            doc = _summary(doc)
        if doc is not None:
            left -= len(doc)
        bounded.append(doc)
    return bounded


def _summary(doc: bytes) -> bytes:
    members = _members.decode(doc)
    result = members.pop("result", None)
    notes = members.pop("notes", None)
    if result is None and notes is None:
        return doc
    if result is not None:
        members["result_truncated"] = msgspec.Raw(b"true")
        members["result_size"] = msgspec.Raw(str(len(result)).encode())
    return msgspec.json.encode(members)


def stamp(execution_id: str, code: str) -> str:
    """`execution_id` naming shard `code` in its last character ('' leaves it as it is)."""
    return execution_id[:-1] + code if code else execution_id


def parse(redis_url: str, shards: str, routes: str) -> Routes:
    """The table of the settings `AGENTFIELD_ARQ_REDIS_URL`, `_REDIS_SHARDS` (space-separated
    `code=url`) and `_REDIS_ROUTES` (comma-separated `node_id=code`); ConfigurationError names
    the variable and the entry at fault."""
    urls = {HOME: redis_url}
    for entry in shards.split():
        code, eq, url = entry.partition("=")
        if not eq or len(code) != 1 or code not in CODES:
            raise ConfigurationError(
                f"invalid setting: {SHARDS_VAR}: '{entry[:100]}' is not code=url with a code of "
                f"one character of '{CODES}'"
            )
        if code in urls:
            raise ConfigurationError(f"invalid setting: {SHARDS_VAR}: shard '{code}' twice")
        try:
            sentinel_address(url)
        except ValueError as exc:
            raise ConfigurationError(f"invalid setting: {SHARDS_VAR}: shard {code}: {exc}") from exc
        if not url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
            raise ConfigurationError(
                f"invalid setting: {SHARDS_VAR}: shard {code}: '{url[:100]}' is not a Redis URL"
            )
        urls[code] = url
    if len(urls) > 1 and not redis_url:
        raise ConfigurationError(
            f"invalid setting: {SHARDS_VAR} needs AGENTFIELD_ARQ_REDIS_URL, the home Redis"
        )
    return Routes(urls=urls, nodes=_parse_routes(routes, urls))


def _parse_routes(routes: str, urls: dict[str, str]) -> dict[str, str]:
    nodes: dict[str, str] = {}
    for raw in routes.split(","):
        entry = raw.strip()
        if not entry:
            continue
        node_id, eq, code = (part.strip() for part in entry.partition("="))
        if not eq or not _NODE.fullmatch(node_id):
            raise ConfigurationError(
                f"invalid setting: {ROUTES_VAR}: '{entry[:100]}' is not node_id=shard"
            )
        if code not in urls:
            raise ConfigurationError(
                f"invalid setting: {ROUTES_VAR}: node '{node_id}' goes to shard '{code[:8]}', "
                f"which {SHARDS_VAR} does not name"
            )
        if nodes.get(node_id, code) != code:
            raise ConfigurationError(
                f"invalid setting: {ROUTES_VAR}: node '{node_id}' goes to two shards"
            )
        nodes[node_id] = code
    return nodes
