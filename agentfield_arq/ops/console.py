"""The operator's commands: `executions list|show|cancel|retry`, `webhooks dead|retry`, `queue`
and `nodes`, each with a table for people and `--json` for scripts.

They talk to Redis directly, through the core, as the API does: they work while the API is
down, need no API key, and see every caller's executions (an operator on a host that can reach
Redis can do all of this with redis-cli anyway). Redis is found as `redis-cli` finds it:
`AGENTFIELD_ARQ_REDIS_URL`, else the `redis.url` the run command writes in its data folder,
looked for in the current directory and then in each parent, as git looks for `.git`.
With nodes over several Redis (`AGENTFIELD_ARQ_REDIS_SHARDS`, core/routing.py), they read
every Redis of the routes as the API does: a list from all of them at once, merged; one
execution where its id says (then home); `queue` one column per Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import decode

if TYPE_CHECKING:  # the server extra's modules are imported by the commands that need them
    from redis.asyncio import Redis

    from agentfield_arq.core.catalog import Filters
    from agentfield_arq.core.store import ExecutionStore

URL_FILE = "redis.url"
MAX_PAGE = 500
Handler = Callable[[Settings, argparse.Namespace], int]


class NoRedis(Exception):
    """Redis cannot be found or does not answer; the message is the one line to print."""


def find_redis_url(settings: Settings, cwd: Path | None = None) -> str:
    """The system's Redis URL, or NoRedis saying exactly where it looked."""
    if settings.redis_url:
        return settings.redis_url
    data = Path(settings.data_dir)
    if data.is_absolute():
        places = [data / URL_FILE]
    else:
        here = (cwd or Path.cwd()).resolve()
        places = [folder / data / URL_FILE for folder in (here, *here.parents)]
    for place in places:
        if place.is_file():
            return place.read_text().strip()
    looked = ", ".join(str(p) for p in places)
    raise NoRedis(
        f"no Redis: AGENTFIELD_ARQ_REDIS_URL is not set and no {URL_FILE} was found "
        f"(looked in {looked}); start the system with `agentfield-arq run`"
    )


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _emit(args: argparse.Namespace, data: Any, table: Callable[[Any], str]) -> None:
    if args.json:
        print(msgspec.json.encode(data).decode())
    else:
        print(table(data))


class Fleet:
    """A client of every Redis of the routes (home's alone without routes), by code."""

    def __init__(self, settings: Settings, clients: dict[str, Redis]) -> None:
        self.settings = settings
        self.routes = settings.routes
        self.clients = clients

    def store(self, code: str) -> ExecutionStore:
        """The ExecutionStore of Redis `code` (its new ids name it when routed)."""
        from agentfield_arq.core.store import ExecutionStore

        return ExecutionStore(self.clients[code], self.settings, code if self.routes.routed else "")

    def place(self, node_id: str) -> ExecutionStore:
        """The ExecutionStore that `node_id`'s new executions go to."""
        return self.store(self.routes.of_node(node_id))

    async def holding(self, execution_id: str) -> str:
        """The code of the Redis holding `execution_id`: the one it names if that one has its
        record, else home (as the API's `Shards.holding`)."""
        from agentfield_arq.core.keys import Keys
        from agentfield_arq.core.routing import HOME

        named = self.routes.of_id(execution_id)
        key = Keys(self.settings.key_prefix).execution(execution_id)
        if named == HOME or await self.clients[named].exists(key):
            return named
        return HOME


async def _with_fleet(settings: Settings, work: Callable[[Fleet], Awaitable[int]]) -> int:
    """Run `work` with a client of every Redis of the routes, or NoRedis if one does not
    answer."""
    from redis.exceptions import RedisError

    from agentfield_arq.core.connection import connect
    from agentfield_arq.core.routing import HOME

    urls = {**settings.routes.urls, HOME: find_redis_url(settings)}
    clients = {code: connect(url) for code, url in urls.items()}
    try:
        for code, client in clients.items():
            try:
                await client.ping()
            except (RedisError, OSError) as exc:
                which = f"Redis {code}" if len(urls) > 1 else "Redis"
                raise NoRedis(
                    f"{which} at {urls[code]} does not answer ({exc}); is the system up?"
                ) from exc
        return await work(Fleet(settings, clients))
    finally:
        for client in clients.values():
            await client.aclose()


def _executions_table(docs: list[dict[str, Any]]) -> str:
    rows = [
        (d["execution_id"], d["status"], d.get("target"), d.get("created_at"), d.get("duration_ms"))
        for d in docs
    ]
    return _table(rows, ("EXECUTION", "STATUS", "TARGET", "CREATED", "MS"))


def _show_table(doc: dict[str, Any]) -> str:
    shown = {k: v for k, v in doc.items() if k not in ("result", "webhook_events")}
    if "result" in doc:
        shown["result"] = msgspec.json.encode(doc["result"]).decode()[:200]
    return _table(sorted(shown.items()), ("FIELD", "VALUE"))


def _filters(args: argparse.Namespace) -> Filters:
    """The list's flags, checked as the list route checks its query (the same messages)."""
    from starlette.datastructures import QueryParams

    from agentfield_arq.api.listing import filters_of

    given = {
        name: getattr(args, name.replace("-", "_"))
        for name in ("status", "target", "node", "run_id", "parent")
        if getattr(args, name) is not None
    }
    return filters_of(QueryParams(given))


def _executions(settings: Settings, args: argparse.Namespace) -> int:
    from agentfield_arq.core.catalog import Catalog, merge
    from agentfield_arq.core.execution import cancel
    from agentfield_arq.core.rerun import missing, rerun

    async def work(fleet: Fleet) -> int:
        if args.action == "list":
            f = _filters(args)
            pages = [
                Catalog(fleet.store(code)).page(f, args.limit, args.cursor)
                for code in fleet.clients
            ]
            found = list(await asyncio.gather(*pages))
            page = merge(found, args.limit) if fleet.routes.routed else found[0]
            _emit(args, [decode(d) for d in page.docs], _executions_table)
            if page.next_cursor and not args.json:
                print(f"\nmore: --cursor {page.next_cursor}")
            return 0
        store = fleet.store(await fleet.holding(args.id))
        if args.action == "retry":
            # The new execution goes where its node is now, as the API's retry.
            submitted = await rerun(
                store, args.id, place=lambda node: fleet.store(fleet.routes.of_node(node))
            )
            _emit(args, submitted, lambda s: f"queued {s.execution_id}, a retry of {args.id}")
            return 0
        if args.action == "cancel":
            await cancel(store, args.id)
        view = await store.get_view(args.id)
        if view is None:
            raise missing(store, args.id)
        _emit(args, decode(view), _show_table)
        return 0

    return asyncio.run(_with_fleet(settings, work))


def _webhooks(settings: Settings, args: argparse.Namespace) -> int:
    from agentfield_arq.core.outbox import Outbox
    from agentfield_arq.core.routing import merged_page
    from agentfield_arq.kernel.codec import now_ms
    from agentfield_arq.kernel.models import DeadPage

    async def work(fleet: Fleet) -> int:
        if args.action == "retry":
            outbox = Outbox(fleet.clients[await fleet.holding(args.id)], settings)
            redriven = await outbox.redrive(args.id, now_ms())
            _emit(args, redriven, lambda r: f"{r.execution_id}: webhook {r.webhook_status}")
            return 0
        parts = await asyncio.gather(
            *(
                Outbox(c, settings).dead_entries(args.limit, args.cursor)
                for c in fleet.clients.values()
            )
        )
        deliveries, next_cursor = merged_page(parts, args.limit)
        page = DeadPage(deliveries=deliveries, next_cursor=next_cursor)
        rows = [
            (d.execution_id, d.target, d.attempts, d.last_http_status, d.failed_at, d.last_error)
            for d in page.deliveries
        ]
        header = ("EXECUTION", "TARGET", "ATTEMPTS", "HTTP", "FAILED", "LAST ERROR")
        _emit(args, page, lambda _: _table(rows, header))
        return 0

    return asyncio.run(_with_fleet(settings, work))


def _queue(settings: Settings, args: argparse.Namespace) -> int:
    from agentfield_arq.core.keys import Keys
    from agentfield_arq.core.metrics import Gauges
    from agentfield_arq.core.nodes import NodeRegistry
    from agentfield_arq.core.roster import Roster
    from agentfield_arq.kernel.codec import now_ms
    from agentfield_arq.kernel.status import Status

    async def state(redis: Any) -> dict[str, Any]:
        keys = Keys(settings.key_prefix)
        total, by_kind, oldest = await Gauges(redis, keys, NodeRegistry(redis, settings)).queue(
            now_ms()
        )
        return {
            "queued_jobs": total,
            **{f"queued_{kind}s": count for kind, count in by_kind.items()},
            "oldest_queued_s": oldest,
            "running": await redis.zcard(keys.index_status(Status.RUNNING)),
            "workers_alive": await Roster(redis, keys).alive(now_ms()),
        }

    async def work(fleet: Fleet) -> int:
        found = await asyncio.gather(*(state(c) for c in fleet.clients.values()))
        if not fleet.routes.routed:
            _emit(args, found[0], lambda s: _table(list(s.items()), ("QUEUE", "VALUE")))
            return 0
        # Each Redis's own queue and workers (its workers serve no other), by code.
        by_code = dict(zip(fleet.clients, found, strict=True))
        rows = [(name, *(each[name] for each in found)) for name in found[0]]
        header = ("QUEUE", *(f"REDIS {code}" for code in by_code))
        _emit(args, by_code, lambda _: _table(rows, header))
        return 0

    return asyncio.run(_with_fleet(settings, work))


def _nodes(settings: Settings, args: argparse.Namespace) -> int:
    from agentfield_arq.core.nodes import NodeRegistry
    from agentfield_arq.core.routing import merged_nodes

    async def work(fleet: Fleet) -> int:
        found = await asyncio.gather(
            *(NodeRegistry(c, settings).list() for c in fleet.clients.values())
        )
        nodes = merged_nodes(fleet.routes, list(zip(fleet.clients, found, strict=True)))
        rows = [
            (
                n["id"],
                n["status"],
                n["base_url"],
                n["last_heartbeat"],
                len(n.get("reasoners", [])) + len(n.get("skills", [])),
            )
            for n in nodes
        ]
        header = ("NODE", "STATUS", "BASE URL", "LAST HEARTBEAT", "TARGETS")
        _emit(args, nodes, lambda _: _table(rows, header))
        return 0

    return asyncio.run(_with_fleet(settings, work))


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _page_flags(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--limit", type=_limit, default=default, help=f"page size ({default})")
    parser.add_argument("--cursor", help="the cursor the previous page printed")


def add_commands(sub: Any) -> dict[str, Handler]:
    """Add the operator's commands to the `agentfield-arq` parser; returns their handlers."""
    executions = sub.add_parser("executions", help="list, show, cancel or retry executions")
    actions = executions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="executions, newest first, filtered")
    for flag, what in (
        ("--status", "only this status"),
        ("--target", "only this target (node_id.name)"),
        ("--node", "only this node's targets"),
        ("--run-id", "only this run"),
        ("--parent", "only the children of this execution"),
    ):
        listing.add_argument(flag, help=what)
    _page_flags(listing, 20)
    for action, what in (
        ("show", "one execution's state"),
        ("cancel", "cancel an execution that has not ended"),
        ("retry", "run a finished execution again, as a new execution"),
    ):
        one = actions.add_parser(action, help=what)
        one.add_argument("id", help="the execution id")
    for parser in actions.choices.values():
        _json_flag(parser)
    webhooks = sub.add_parser("webhooks", help="dead webhook deliveries, and sending one again")
    hooks = webhooks.add_subparsers(dest="action", required=True)
    dead = hooks.add_parser("dead", help="dead deliveries, newest first")
    _page_flags(dead, 20)
    again = hooks.add_parser("retry", help="send an execution's webhook again (same webhook-id)")
    again.add_argument("id", help="the execution id")
    for parser in hooks.choices.values():
        _json_flag(parser)
    _json_flag(sub.add_parser("queue", help="depth, oldest wait, running, workers alive"))
    _json_flag(sub.add_parser("nodes", help="registered agent nodes and their liveness"))
    return {"executions": _executions, "webhooks": _webhooks, "queue": _queue, "nodes": _nodes}


def guarded(handler: Handler, settings: Settings, args: argparse.Namespace) -> int:
    """Run an operator's command; a missing Redis or a refused action is one line on stderr."""
    from agentfield_arq.kernel.errors import ApiError

    try:
        return handler(settings, args)
    except NoRedis as exc:
        print(f"agentfield-arq: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"agentfield-arq: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
