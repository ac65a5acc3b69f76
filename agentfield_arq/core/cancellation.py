"""What follows a cancel or a timeout, in a worker job (`tell_agent`), never in the request that
cancelled: the agent is told at its cancel route, and a cancel reaches the descendants.

AgentField's SDK serves `POST /_internal/executions/{execution_id}/cancel` on every agent and
cancels the reasoner's asyncio task there; it answers 200 with `{"cancelled": true,
"execution_id"}`, or `{"cancelled": false, "execution_id", "reason": "execution_not_active"}`
when nothing of that id runs there. Our SDK serves the same route with the same answers. The
call is best-effort: one try, bounded by `AGENTFIELD_ARQ_AGENT_CANCEL_TIMEOUT_S`, and its
outcome is recorded on the execution's hash as `agent_told` (`cancelled`, `not_active`, or
what went wrong), which operators read with `redis-cli HGET`.

A cancelled execution's children in its run (indexed by create.lua under `exec:{id}:children`)
are cancelled in turn, each with its own job, so the whole tree of descendants ends cancelled
and every agent of it is told; with nodes routed over several Redis (core/routing.py), the
children on every Redis of the routes (found there by the list's index by parent).
finish.lua queues the job in the same step as the cancel, so a crash cannot leave a cancel
without it; on the parent's Redis, only if the parent started or has children there (a child
made on another Redis joins its parent's children set there too: core/lineage.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import msgspec

from agentfield_arq.core.catalog import RUN_MAX, Catalog, Filters
from agentfield_arq.core.execution import truncate
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.status import Status

logger = logging.getLogger(__name__)

TOLD_FIELD = "agent_told"
# What AgentField's dispatcher names itself with; the SDK logs it.
SOURCE_HEADER = {"X-AgentField-Source": "agentfield-arq"}
ANSWER_CHARS = 200


class CancelAnswer(msgspec.Struct, kw_only=True):
    """The agent's answer at its cancel route (AgentField's shape); other fields tolerated."""

    cancelled: bool = False
    reason: str | None = None


class Ended(msgspec.Struct, kw_only=True):
    """What this job reads of the status document: why the execution ended."""

    error: str | None = None


class _Child(msgspec.Struct):
    execution_id: str


_answer = msgspec.json.Decoder(CancelAnswer)
_child = msgspec.json.Decoder(_Child)
_ended = msgspec.json.Decoder(Ended)


def cancel_path(execution_id: str) -> str:
    """The agent's cancel route for one execution, as AgentField's SDK serves it."""
    return f"/_internal/executions/{execution_id}/cancel"


class Cancellation:
    """Tells agents that their execution ended without them, and cancels descendants."""

    def __init__(
        self,
        store: ExecutionStore,
        nodes: NodeRegistry,
        http: httpx.AsyncClient,
        settings: Settings,
        elsewhere: Sequence[ExecutionStore] = (),
    ) -> None:
        self.store = store
        self.nodes = nodes
        self.http = http
        self.settings = settings
        # The other Redis of the routes (core/routing.py): a child is indexed under its
        # parent on its own Redis, which may be another than the parent's.
        self.elsewhere = elsewhere

    async def tell_agent(self, execution_id: str) -> None:
        """Call the agent's cancel route for a cancelled or timed-out execution that was started,
        record how that went, then cancel a cancelled execution's children."""
        fields = await self.store.fields(execution_id)
        status = fields.get("status")
        if status not in (Status.CANCELLED, Status.TIMEOUT):
            logger.info("tell agent execution_id=%s: nothing to tell (%s)", execution_id, status)
            return
        doc = await self.store.get_doc(execution_id)
        reason = (_ended.decode(doc).error if doc else None) or status
        if ("started_ms" in fields or "started_at" in fields) and TOLD_FIELD not in fields:
            told = await self._call(execution_id, fields, status, reason)
            await self.store.note(execution_id, TOLD_FIELD, told)
        if status == Status.CANCELLED:
            await self._cascade(execution_id, reason, fields.get("run_id", ""))

    async def _call(
        self, execution_id: str, fields: dict[str, str], status: str, reason: str
    ) -> str:
        base_url = await self.nodes.base_url(fields["node_id"])
        if base_url is None:
            return f"node '{fields['node_id']}' is gone"
        url = base_url + cancel_path(execution_id)
        headers = {"X-Execution-ID": execution_id, "X-Run-ID": fields["run_id"], **SOURCE_HEADER}
        body = {"reason": reason, "status": status}
        try:
            response = await self.http.post(
                url, json=body, headers=headers, timeout=self.settings.agent_cancel_timeout_s
            )
        except httpx.HTTPError as exc:
            told = f"unreachable ({type(exc).__name__}: {exc})"
        else:
            told = _told(response)
        logger.info("told agent execution_id=%s %s: %s", execution_id, status, told)
        return truncate(told)

    async def _cascade(self, execution_id: str, reason: str, run_id: str) -> None:
        error = truncate(f"parent execution {execution_id} was cancelled: {reason}")
        await self._cancel(self.store, await self.store.children(execution_id), execution_id, error)
        for store in self.elsewhere:
            children = await _listed_children(store, execution_id, run_id)
            await self._cancel(store, children, execution_id, error)

    async def _cancel(
        self, store: ExecutionStore, children: list[str], parent: str, error: str
    ) -> None:
        for child in children:
            now = now_ms()
            transition = await store.finish(child, Status.CANCELLED, rfc3339(now), now, error=error)
            if transition.outcome is Outcome.OK:
                logger.info("cancel execution_id=%s: its parent %s was", child, parent)


async def _listed_children(store: ExecutionStore, execution_id: str, run_id: str) -> list[str]:
    """The children in the run of `execution_id` that another Redis than its own holds: read
    from the list's index by parent, since create.lua adds a child to its parent's children
    set only on the Redis that holds the parent's record."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        page = await Catalog(store).page(
            Filters(parent=execution_id, run_id=run_id), RUN_MAX, cursor
        )
        found += [_child.decode(doc).execution_id for doc in page.docs]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _told(response: httpx.Response) -> str:
    if not response.is_success:
        return f"agent answered {response.status_code}: {response.text[:ANSWER_CHARS]}"
    try:
        answer = _answer.decode(response.content)
    except msgspec.DecodeError:
        return f"agent answered {response.status_code} without a cancel answer"
    if answer.cancelled:
        return "cancelled"
    if answer.reason == "execution_not_active":
        return "not_active"
    return f"not cancelled: {answer.reason or 'no reason given'}"
