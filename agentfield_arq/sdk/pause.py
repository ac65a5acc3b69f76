"""`app.pause`: a reasoner waits for a person's approval, as AgentField's does.

The agent tells the control plane (`request-approval`), which keeps the execution `waiting`
with the approval's own deadline; the reasoner awaits a future here, holding no worker. The
decision arrives on the agent's `POST /webhooks/approval` (the control plane posts it there),
which resolves the future; past `timeout` the pause returns `expired` by itself.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import msgspec

from agentfield_arq.client.answers import raise_for, unreachable
from agentfield_arq.kernel.models import ApprovalRequest, DecisionNotice

logger = logging.getLogger(__name__)
APPROVAL_PATH = "/webhooks/approval"


class ApprovalResult(msgspec.Struct, kw_only=True, frozen=True):
    """What `app.pause` returns: `decision` is approved, rejected or expired."""

    decision: str
    feedback: str = ""
    execution_id: str = ""
    approval_request_id: str = ""
    response: dict[str, object] | None = None

    @property
    def approved(self) -> bool:
        """True when a person approved."""
        return self.decision == "approved"


class Pauses:
    """The reasoners of this agent that wait for a decision, by approval request id."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[ApprovalResult]] = {}

    async def pause(
        self,
        http: httpx.AsyncClient,
        node_id: str,
        execution_id: str,
        request: ApprovalRequest,
        timeout_s: float,
    ) -> ApprovalResult:
        """Ask for approval and wait for the decision (or `expired` after `timeout_s`)."""
        future = self._waiting.setdefault(
            request.approval_request_id, asyncio.get_running_loop().create_future()
        )
        path = f"/api/v1/agents/{node_id}/executions/{execution_id}/request-approval"
        try:
            try:
                answer = await http.post(path, content=msgspec.json.encode(request), headers=_JSON)
            except httpx.TransportError as exc:
                raise unreachable(exc) from exc
            raise_for(answer)
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError:
                return ApprovalResult(
                    decision="expired",
                    feedback="timed out waiting for approval",
                    execution_id=execution_id,
                    approval_request_id=request.approval_request_id,
                )
        finally:
            self._waiting.pop(request.approval_request_id, None)

    def resolve(self, notice: DecisionNotice) -> bool:
        """Hand a decision to the reasoner waiting for it; False when none waits."""
        future = self._waiting.get(notice.approval_request_id)
        if future is None or future.done():
            logger.info(
                "approval %s for execution_id=%s: nobody waits for it",
                notice.decision,
                notice.execution_id,
            )
            return False
        future.set_result(
            ApprovalResult(
                decision=notice.decision,
                feedback=notice.feedback,
                execution_id=notice.execution_id,
                approval_request_id=notice.approval_request_id,
                response=notice.response,
            )
        )
        return True


_JSON = {"Content-Type": "application/json"}
