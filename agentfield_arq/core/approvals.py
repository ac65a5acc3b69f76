"""Approvals: an execution waits for a person, holding no worker slot, until it is approved
(it runs on), rejected (it fails) or its approval expires (the deadline sweep times it out).

The agent asks (`request`, AgentField's request-approval, which `app.pause` sends) and keeps
its reasoner parked in its own process; the execution is `waiting` in Redis with the
approval's deadline. A decision (`decide`) is recorded by a Lua script, and the agent is told
at the callback URL it gave, which lies under its registered base URL: AgentField's SDK
resolves the paused `app.pause` there. If that call fails the agent can still poll
`approval-status`.
"""

from __future__ import annotations

import logging
import math

import httpx
import msgspec

from agentfield_arq.core.keys import APPROVAL_MAX_WAIT_S, NON_TERMINAL_GRACE_S, safe_id
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.restart import source_fields
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import decode, encode, now_ms, rfc3339, text
from agentfield_arq.kernel.errors import (
    ApprovalNotFound,
    ExecutionNotFound,
    InvalidRequest,
    InvalidTransition,
)
from agentfield_arq.kernel.models import (
    Approval,
    ApprovalRequest,
    ApprovalRequested,
    Decision,
    DecisionNotice,
)
from agentfield_arq.kernel.status import Status

logger = logging.getLogger(__name__)
NOTIFY_TIMEOUT_S = 5.0
REJECTED_ERROR = "approval rejected"


class Approvals:
    """Asking for, deciding and reading approvals."""

    def __init__(self, store: ExecutionStore, nodes: NodeRegistry) -> None:
        self.store = store
        self.nodes = nodes
        self._request = load_script(store.redis, "approval_request")
        self._decide = load_script(store.redis, "approval_decide")
        self._awaiter = load_script(store.redis, "awaiter")

    def _keys(self, execution_id: str) -> list[str]:
        k = self.store.keys
        return [
            k.execution(execution_id),
            k.status_doc(execution_id),
            k.deadlines,
            k.events,
            k.index_status(Status.RUNNING),
            k.index_status(Status.WAITING),
            k.history(execution_id),
        ]

    async def _fields(self, node_id: str | None, execution_id: str) -> dict[str, str]:
        fields = await source_fields(self.store, execution_id)
        if node_id is not None and fields.get("node_id") != node_id:
            raise ExecutionNotFound(f"node '{node_id}' has no execution '{execution_id}'")
        return fields

    async def request(
        self, node_id: str, execution_id: str, body: ApprovalRequest
    ) -> ApprovalRequested:
        """The running execution waits for approval, until its approval expires."""
        await self._fields(node_id, execution_id)
        if not body.approval_request_id or not safe_id(body.approval_request_id):
            raise InvalidRequest("approval_request_id: 1 to 128 of [A-Za-z0-9_-]")
        if not 0 < body.expires_in_hours * 3600 <= APPROVAL_MAX_WAIT_S:
            raise InvalidRequest(
                f"expires_in_hours: above 0, at most {APPROVAL_MAX_WAIT_S // 3600}"
            )
        base = await self.nodes.base_url(node_id) or ""
        if body.callback_url and not body.callback_url.startswith(base + "/"):
            raise InvalidRequest(f"callback_url: must lie under the node's base URL {base}")
        now = now_ms()
        expires = now + math.ceil(body.expires_in_hours * 3600 * 1000)
        reply = await self._request(
            keys=self._keys(execution_id),
            args=[
                body.approval_request_id,
                body.approval_request_url,
                body.callback_url,
                rfc3339(now),
                expires,
                rfc3339(expires),
                self.store.settings.stream_maxlen,
                (self.store.settings.retention_s + NON_TERMINAL_GRACE_S) * 1000,
                now,
            ],
        )
        self._settled(execution_id, reply, "waiting")
        logger.info(
            "approval requested execution_id=%s approval_request_id=%s",
            execution_id,
            body.approval_request_id,
        )
        return ApprovalRequested(
            approval_request_id=body.approval_request_id,
            approval_request_url=body.approval_request_url,
            execution_id=execution_id,
            status=Status.WAITING,
            expires_at=rfc3339(expires),
        )

    async def decide(self, execution_id: str, decision: str, body: Decision) -> Approval:
        """Record a person's decision; a rejection ends the execution `failed`. The agent is
        told at its callback URL (best effort: it can poll approval-status)."""
        now = now_ms()
        deadline = now + int(self.store.settings.execution_deadline_s * 1000)
        reply = await self._decide(
            keys=self._keys(execution_id),
            args=[
                decision,
                rfc3339(now),
                body.feedback,
                "" if body.response is None else encode(body.response),
                deadline,
                self.store.settings.stream_maxlen,
            ],
        )
        if text(reply[0]) == "no_approval":
            raise ApprovalNotFound(f"execution '{execution_id}' has not asked for approval")
        self._settled(execution_id, reply, decision)
        if decision == "rejected":
            error = REJECTED_ERROR + (f": {body.feedback}" if body.feedback else "")
            await self.store.finish(execution_id, Status.FAILED, rfc3339(now), now, error=error)
        logger.info("approval %s execution_id=%s", decision, execution_id)
        approval = await self.status(None, execution_id)
        await self._notify(execution_id, approval)
        return approval

    async def status(self, node_id: str | None, execution_id: str) -> Approval:
        """Where the execution's approval stands (expired once its deadline timed it out)."""
        fields = await self._fields(node_id, execution_id)
        if "approval_request_id" not in fields:
            raise ApprovalNotFound(f"execution '{execution_id}' has not asked for approval")
        state = fields.get("approval_state", "pending")
        if state == "pending" and fields.get("status") == Status.TIMEOUT:
            state = "expired"
        response = fields.get("approval_response")
        return Approval(
            execution_id=execution_id,
            approval_request_id=fields["approval_request_id"],
            status=state,
            execution_status=fields.get("status", ""),
            request_url=fields.get("approval_request_url") or None,
            requested_at=fields.get("approval_requested_at"),
            expires_at=fields.get("approval_expires_at"),
            responded_at=fields.get("approval_responded_at"),
            feedback=fields.get("approval_feedback"),
            response=None if response is None else msgspec.Raw(response.encode()),
        )

    async def awaiter(self, node_id: str, execution_id: str, status: str) -> bytes:
        """running <-> waiting while a child the execution awaits waits."""
        if status not in (Status.WAITING, Status.RUNNING):
            raise InvalidRequest(f"status: waiting or running, got '{status[:20]}'")
        await self._fields(node_id, execution_id)
        k = self.store.keys
        reply = await self._awaiter(
            keys=[
                k.execution(execution_id),
                k.status_doc(execution_id),
                k.events,
                k.index_status(Status.RUNNING),
                k.index_status(Status.WAITING),
                k.history(execution_id),
            ],
            args=[status, self.store.settings.stream_maxlen],
        )
        doc: bytes = self._settled(execution_id, reply, status)
        return doc

    @staticmethod
    def _settled(execution_id: str, reply: list[bytes], wanted: str) -> bytes:
        outcome = text(reply[0])
        if outcome == "missing":
            raise ExecutionNotFound(f"execution '{execution_id}' not found")
        if outcome == "conflict":
            raise InvalidTransition(
                f"execution '{execution_id}' is {text(reply[1])}; cannot make it {wanted}"
            )
        doc: bytes = reply[1]
        return doc

    async def _notify(self, execution_id: str, approval: Approval) -> None:
        fields = await source_fields(self.store, execution_id)
        url = fields.get("approval_callback_url")
        if not url:
            return
        notice = DecisionNotice(
            execution_id=execution_id,
            approval_request_id=approval.approval_request_id,
            decision=approval.status,
            feedback=approval.feedback or "",
            response=decode(fields["approval_response"]) if "approval_response" in fields else None,
        )
        try:
            async with httpx.AsyncClient(timeout=NOTIFY_TIMEOUT_S) as client:
                answer = await client.post(url, content=encode(notice), headers=_JSON)
            logger.info(
                "approval callback execution_id=%s answered %s", execution_id, answer.status_code
            )
        except httpx.HTTPError as exc:
            logger.warning("approval callback execution_id=%s failed: %s", execution_id, exc)


_JSON = {"Content-Type": "application/json"}
