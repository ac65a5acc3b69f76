"""Restart (AgentField's `restart_execution`): a new execution, in a new run, of an ended
execution's target with its input (or a new one), its session, actor, context and webhook.

This is the smallest form the SDK's call needs. AgentField's `reuse` (replaying the source
run's successful child calls) and `fork` are accepted and not applied: every child call runs
again. The operations lane's retry route (`POST /executions/{id}/retry`) re-runs an execution
under its own id; both read the source record the same way (`resubmission`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.execution import FORWARDED_HEADERS, submit
from agentfield_arq.core.keys import safe_id
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import decode, text
from agentfield_arq.kernel.errors import ExecutionNotFound, ExecutionNotTerminal
from agentfield_arq.kernel.models import ExecuteRequest, Restarted, RestartRequest
from agentfield_arq.kernel.status import TERMINAL_STATUSES

logger = logging.getLogger(__name__)


async def source_fields(store: ExecutionStore, execution_id: str) -> dict[str, str]:
    """The stored record of `execution_id`, its webhook secret (kept apart) included, as
    `webhook_secret`; 404 if it is unknown or expired."""
    if not safe_id(execution_id):
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(store.keys.execution(execution_id))
        pipe.get(store.keys.webhook_secret(execution_id))
        raw, secret = await pipe.execute()
    if not raw:
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")
    fields = {text(k): text(v) for k, v in raw.items()}
    if secret:
        fields["webhook_secret"] = text(secret)
    return fields


def resubmission(
    fields: dict[str, str], body: RestartRequest
) -> tuple[ExecuteRequest, dict[str, str]]:
    """The request and headers that submit `fields`' execution again (in a new run)."""
    webhook = None
    if fields.get("webhook_url"):
        webhook = {
            "url": fields["webhook_url"],
            "headers": decode(fields.get("webhook_headers") or "{}"),
            "secret": fields.get("webhook_secret"),
        }
    request = ExecuteRequest(
        input=body.input if body.input is not None else decode(fields["input"]),
        context=body.context if body.context is not None else _context(fields),
        webhook=webhook,
    )
    headers = {
        header: fields[field]
        for header, field in FORWARDED_HEADERS.items()
        if field in fields and header != "x-parent-execution-id"
    }
    return request, headers


def _context(fields: dict[str, str]) -> dict[str, object] | None:
    return decode(fields["context"]) if "context" in fields else None


async def restart(
    store: ExecutionStore,
    execution_id: str,
    body: RestartRequest,
    owner: Identity = ANONYMOUS_ADMIN,
    place: Callable[[str], ExecutionStore] | None = None,
) -> Restarted:
    """Submit an ended execution again as a new one in a new run, owned by `owner` (who may
    restart it is the API's to decide); 409 while it has not ended. The new one goes to
    `place(node_id)` (the node's Redis now, core/routing.py), else to `store`."""
    fields = await source_fields(store, execution_id)
    if fields.get("status") not in TERMINAL_STATUSES:
        raise ExecutionNotTerminal(
            f"execution '{execution_id}' is {fields.get('status')}; only an ended execution "
            "can be restarted"
        )
    request, headers = resubmission(fields, body)
    to = place(fields["node_id"]) if place else store
    accepted = await submit(to, fields["target"], request, headers, owner=owner)
    logger.info(
        "restart execution_id=%s from=%s reason=%s",
        accepted.execution_id,
        execution_id,
        (body.reason or "")[:200],
    )
    return Restarted(**msgspec.structs.asdict(accepted), restarted_from=execution_id)
