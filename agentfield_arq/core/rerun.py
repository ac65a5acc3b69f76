"""Running a finished execution again: a new execution, linked to the one it retries.

The new execution takes the old one's target, input, context, run, parent, session, actor and
webhook, and names it in `retry_of`; it is created as any other (create.lua), so it joins the
same indexes and the same run tree. The old execution does not change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.execution import FORWARDED_HEADERS
from agentfield_arq.core.store import ExecutionStore, NewExecution
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.errors import ExecutionExpired, ExecutionNotFound, ExecutionNotTerminal
from agentfield_arq.kernel.models import Submitted
from agentfield_arq.kernel.status import TERMINAL_STATUSES, Status

logger = logging.getLogger(__name__)

# What a retry copies from the record, besides the ids it makes anew.
_COPIED = (
    "run_id",
    "target",
    "node_id",
    "name",
    "input",
    "context",
    *FORWARDED_HEADERS.values(),
    "webhook_url",
    "webhook_headers",
    "webhook_notices",
    "traceparent",
)


def missing(store: ExecutionStore, execution_id: str) -> ExecutionNotFound | ExecutionExpired:
    """The error for an id without a record: expired (410) for `EXPIRED_FOR_S` after its
    record can have expired (see `ExecutionStore.expired`), else unknown (404)."""
    shown = execution_id[:100]
    if store.expired([execution_id], now_ms()):
        return ExecutionExpired(
            f"execution '{shown}' ended and its record expired after the retention period",
            execution_id=shown,
        )
    return ExecutionNotFound(f"execution '{shown}' not found")


async def rerun(
    store: ExecutionStore,
    execution_id: str,
    owner: Identity = ANONYMOUS_ADMIN,
    place: Callable[[str], ExecutionStore] | None = None,
) -> Submitted:
    """Queue a new execution of what `execution_id` ran; only a terminal one may be retried.
    `owner` sees only its own executions (read through the ownership-checked script, as any
    read) and owns the new one, under its cap of unfinished executions like any submission.
    The new one goes to `place(node_id)` (the node's Redis now, core/routing.py), else to
    `store`, which holds the old one."""
    if await store.get_view(execution_id, owner) is None:
        raise missing(store, execution_id)
    old = await store.fields(execution_id)
    if not old:
        raise missing(store, execution_id)
    if old["status"] not in TERMINAL_STATUSES:
        raise ExecutionNotTerminal(
            f"execution '{execution_id}' is {old['status']}; only a finished one can be retried"
        )
    to = place(old["node_id"]) if place else store
    created = now_ms()
    retry_id = to.new_execution_id(created)
    fields = {name: old[name] for name in _COPIED if name in old}
    fields.update(
        retry_of=execution_id,
        created_ms=str(created),
        owner=owner.key_id,
    )
    made = await to.create(
        NewExecution(
            execution_id=retry_id,
            node_id=old["node_id"],
            name=old["name"],
            enqueue_ms=created,
            deadline_ms=created + int(store.settings.execution_deadline_s * 1000),
            fields=fields,
            owner=owner.key_id,
            webhook_secret=await store.webhook_secret(execution_id),
            max_active=0 if owner.is_admin else store.settings.key_max_active,
            owner_listed=not owner.is_admin,
        )
    )
    logger.info("queued execution_id=%s retrying execution_id=%s", retry_id, execution_id)
    return Submitted(
        execution_id=retry_id,
        run_id=fields["run_id"],
        workflow_id=fields["run_id"],
        status=Status.QUEUED,
        target=fields["target"],
        type=made.kind,
        created_at=rfc3339(created),
        enqueued_at=rfc3339(created),
        webhook_registered="webhook_url" in fields,
    )
