"""The approval routes of a running execution."""

from __future__ import annotations

from agentfield_arq.api import approvals
from agentfield_arq.api.access import Access
from agentfield_arq.api.openapi import Operation
from agentfield_arq.api.operations.common import BODY, PREFIX, REDIS
from agentfield_arq.kernel.errors import (
    ApprovalNotFound,
    ExecutionNotFound,
    Forbidden,
    InvalidTransition,
)
from agentfield_arq.kernel.models import (
    Approval,
    ApprovalRequest,
    ApprovalRequested,
    AwaiterStatusRequest,
    Decision,
    Execution,
)

AGENT_EXECUTION = f"{PREFIX}/agents/{{node_id}}/executions/{{execution_id}}"
_APPROVAL = (Forbidden, ExecutionNotFound, *REDIS)
OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        f"{AGENT_EXECUTION}/request-approval",
        approvals.request_approval,
        "The running execution waits for a person's approval, holding no worker slot",
        {200: ("waiting", ApprovalRequested)},
        body=ApprovalRequest,
        errors=(*BODY, InvalidTransition, *_APPROVAL),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{AGENT_EXECUTION}/approval-status",
        approvals.approval_status,
        "Where the execution's approval stands: pending, approved, rejected or expired",
        {200: ("the approval", Approval)},
        errors=(ApprovalNotFound, *_APPROVAL),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{AGENT_EXECUTION}/awaiter-status",
        approvals.awaiter_status,
        "The execution waits (or runs again) because a child it awaits waits",
        {200: ("the execution", Execution)},
        body=AwaiterStatusRequest,
        errors=(*BODY, InvalidTransition, *_APPROVAL),
        access=Access.AGENT,
    ),
    *(
        Operation(
            "POST",
            f"{PREFIX}/executions/{{execution_id}}/{verb}",
            endpoint,
            summary,
            {200: ("the approval, decided", Approval)},
            body=Decision,
            body_required=False,
            errors=(*BODY, ApprovalNotFound, InvalidTransition, *_APPROVAL),
            access=Access.CALLER,
        )
        for verb, endpoint, summary in (
            ("approve", approvals.approve, "A person approves: the execution runs on"),
            ("reject", approvals.reject, "A person rejects: the execution fails"),
        )
    ),
]
