"""Approval routes: the agent's request-approval, approval-status and awaiter-status (AgentField's
paths under `/agents/{node}/executions/{id}/`), and a person's approve and reject."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.body import read_json
from agentfield_arq.api.deps import deps
from agentfield_arq.api.owners import authorize_agent, authorize_decision
from agentfield_arq.kernel.codec import encode
from agentfield_arq.kernel.models import ApprovalRequest, AwaiterStatusRequest, Decision

JSON = "application/json"


def _ids(request: Request) -> tuple[str, str]:
    return request.path_params["node_id"], request.path_params["execution_id"]


async def request_approval(request: Request) -> Response:
    """The running execution waits for a person's approval (AgentField's `app.pause`)."""
    d = deps(request)
    node_id, execution_id = _ids(request)
    await authorize_agent(request, execution_id)
    body = await read_json(request, ApprovalRequest, d.settings)
    approvals = (await d.shards.holding(execution_id)).approvals
    answer = await approvals.request(node_id, execution_id, body)
    return Response(encode(answer), media_type=JSON)


async def approval_status(request: Request) -> Response:
    """Where the execution's approval stands: pending, approved, rejected or expired."""
    node_id, execution_id = _ids(request)
    await authorize_agent(request, execution_id)
    approvals = (await deps(request).shards.holding(execution_id)).approvals
    answer = await approvals.status(node_id, execution_id)
    return Response(encode(answer), media_type=JSON)


async def awaiter_status(request: Request) -> Response:
    """The execution waits (or runs again) because a child it awaits waits."""
    d = deps(request)
    node_id, execution_id = _ids(request)
    await authorize_agent(request, execution_id)
    body = await read_json(request, AwaiterStatusRequest, d.settings)
    approvals = (await d.shards.holding(execution_id)).approvals
    doc = await approvals.awaiter(node_id, execution_id, body.status)
    return Response(doc, media_type=JSON)


async def approve(request: Request) -> Response:
    """A person approves: the execution runs on, and its agent is told."""
    return await _decide(request, "approved")


async def reject(request: Request) -> Response:
    """A person rejects: the execution fails, and its agent is told."""
    return await _decide(request, "rejected")


async def _decide(request: Request, decision: str) -> Response:
    d = deps(request)
    execution_id = request.path_params["execution_id"]
    await authorize_decision(request, execution_id)
    body = await read_json(request, Decision, d.settings, optional=True)
    approvals = (await d.shards.holding(execution_id)).approvals
    answer = await approvals.decide(execution_id, decision, body)
    return Response(encode(answer), media_type=JSON)
