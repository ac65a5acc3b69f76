"""Listing routes: executions filtered and paged, and a run as a tree. Query parameters are
parsed strictly: a malformed one is `400 invalid_request` naming it, never a 500. An admin's
key sees every execution; any other key only those it submitted (core/catalog.py): another
key's run is not found, as another key's execution is everywhere."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime

import msgspec
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.access import identity
from agentfield_arq.api.deps import deps
from agentfield_arq.api.params import int_param
from agentfield_arq.core.catalog import Catalog, Filters, merge, merged_run
from agentfield_arq.core.keys import safe_id
from agentfield_arq.kernel.codec import encode
from agentfield_arq.kernel.errors import InvalidRequest, InvalidTarget, RunNotFound
from agentfield_arq.kernel.status import Status
from agentfield_arq.kernel.targets import parse_target

JSON = "application/json"
DEFAULT_PAGE = 50
MAX_PAGE = 500
_RUN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_MS = re.compile(r"[0-9]{1,15}")


def _time(params: QueryParams, name: str) -> int | None:
    """An RFC 3339 timestamp (with its offset) or unix milliseconds, as unix ms."""
    raw = params.get(name)
    if raw is None:
        return None
    if _MS.fullmatch(raw):
        return int(raw)
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise InvalidRequest(
            f"query parameter {name}: an RFC 3339 timestamp with an offset, or unix milliseconds"
        )
    return int(stamp.timestamp() * 1000)


def _checked(
    params: QueryParams, name: str, valid: Callable[[str], object], rule: str
) -> str | None:
    raw = params.get(name)
    if raw is not None and not valid(raw):
        raise InvalidRequest(f"query parameter {name}: {rule}")
    return raw


def filters_of(params: QueryParams) -> Filters:
    """The list route's filters, each checked."""
    status, target = params.get("status"), params.get("target")
    if status is not None and status not in Status.__members__.values():
        raise InvalidRequest(f"query parameter status: one of {', '.join(Status)}")
    if target is not None:
        try:
            parse_target(target)
        except InvalidTarget as exc:
            raise InvalidRequest(f"query parameter target: {exc}") from exc
    return Filters(
        status=status,
        target=target,
        node=_checked(params, "node", safe_id, "a node id"),
        run_id=_checked(params, "run_id", _RUN_ID.fullmatch, "1 to 64 of A-Za-z0-9_.:-"),
        parent=_checked(params, "parent", safe_id, "an execution id"),
        since_ms=_time(params, "since"),
        until_ms=_time(params, "until"),
    )


async def list_executions(request: Request) -> Response:
    """Executions passing the filters, newest first; page on with `?cursor=<next_cursor>`."""
    params = request.query_params
    f = filters_of(params)
    limit = int_param(request, "limit", default=DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    cursor = _checked(params, "cursor", safe_id, "the next_cursor of a previous page")
    shards, viewer = deps(request).shards, identity(request)
    if shards.routes.routed:
        pages = [Catalog(shard.store).page(f, limit, cursor, viewer) for shard in shards]
        page = merge(list(await asyncio.gather(*pages)), limit)
    else:
        page = await Catalog(shards.home.store).page(f, limit, cursor, viewer)
    # An ExecutionPage, with the stored documents passed through as they are (msgspec.Raw).
    answer = {"executions": [msgspec.Raw(d) for d in page.docs], "next_cursor": page.next_cursor}
    return Response(encode(answer), media_type=JSON)


async def get_run(request: Request) -> Response:
    """A run's executions as a tree, with their statuses and timings."""
    run_id = request.path_params["run_id"]
    run = None
    shards, viewer = deps(request).shards, identity(request)
    if _RUN_ID.fullmatch(run_id) and shards.routes.routed:
        parts = [Catalog(shard.store).run_nodes(run_id, viewer) for shard in shards]
        run = merged_run(run_id, list(await asyncio.gather(*parts)))
    elif _RUN_ID.fullmatch(run_id):
        run = await Catalog(shards.home.store).run(run_id, viewer)
    if run is None:
        raise RunNotFound(f"run '{run_id[:100]}': no execution of it is kept")
    return Response(encode(run), media_type=JSON)
