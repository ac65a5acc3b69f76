"""Every operation, asked by every role: who gets in, who is refused.

OWNERS below is this test's own account of who may call each route; it must name every
operation of OPERATIONS, so a new route fails here until someone decides who may call it (and
the route's `access` then has to agree). Getting in means any answer but 401 and 403: what a
key may do to one execution or node is the business of test_ownership.py.
"""

from __future__ import annotations

import pytest

from agentfield_arq.api.access import Access
from agentfield_arq.api.routes import OPERATIONS
from agentfield_arq.core.credentials import Role
from agentfield_arq.core.settings import Settings
from tests.e2e.agent_app import registration
from tests.integration.served import served
from tests.keys import ADMIN_KEY, bearer, issue

pytestmark = pytest.mark.integration

PUBLIC, REPORT, CALLER, AGENT, ADMIN = (
    Access.PUBLIC,
    Access.REPORT,
    Access.CALLER,
    Access.AGENT,
    Access.ADMIN,
)
V1 = "/api/v1"
OWNERS = {
    ("POST", f"{V1}/execute/async/{{target}}"): CALLER,
    ("POST", f"{V1}/execute/{{target}}"): CALLER,
    ("POST", f"{V1}/executions/batch-status"): CALLER,
    ("GET", f"{V1}/executions/{{execution_id}}"): CALLER,
    ("POST", f"{V1}/executions/{{execution_id}}/status"): REPORT,
    ("POST", f"{V1}/executions/{{execution_id}}/cancel"): CALLER,
    ("POST", f"{V1}/executions/{{execution_id}}/retry"): CALLER,
    ("GET", f"{V1}/executions"): CALLER,
    ("GET", f"{V1}/executions/{{execution_id}}/events"): CALLER,
    ("GET", f"{V1}/events"): CALLER,
    ("GET", f"{V1}/runs/{{run_id}}"): CALLER,
    # The dashboard's reads (issue 12): one's own execution's input and history, who one is;
    # the last hour of every execution is an operator's.
    ("GET", f"{V1}/executions/{{execution_id}}/input"): CALLER,
    ("GET", f"{V1}/executions/{{execution_id}}/history"): CALLER,
    ("GET", f"{V1}/activity"): ADMIN,
    ("GET", f"{V1}/whoami"): CALLER,
    ("POST", f"{V1}/executions/{{execution_id}}/webhook/retry"): ADMIN,
    ("GET", f"{V1}/webhooks/dead"): ADMIN,
    ("POST", f"{V1}/nodes/register"): AGENT,
    ("POST", f"{V1}/nodes"): AGENT,
    ("GET", f"{V1}/nodes"): CALLER,
    ("GET", f"{V1}/nodes/{{node_id}}"): CALLER,
    ("POST", f"{V1}/nodes/{{node_id}}/heartbeat"): AGENT,
    ("POST", f"{V1}/nodes/{{node_id}}/shutdown"): AGENT,
    ("PATCH", f"{V1}/nodes/{{node_id}}/status"): AGENT,
    ("PUT", f"{V1}/nodes/{{node_id}}/status"): AGENT,
    ("POST", f"{V1}/workflow/executions/events"): AGENT,
    ("POST", f"{V1}/executions/{{execution_id}}/logs"): AGENT,
    ("POST", f"{V1}/did/register"): AGENT,
    # Issue 14's routes: memory and notes are agents' (and within their own executions,
    # api/owners.py); discovery, restart and a person's decision callers'.
    ("POST", f"{V1}/executions/note"): AGENT,
    ("GET", f"{V1}/executions/{{execution_id}}/notes"): CALLER,
    ("POST", f"{V1}/executions/{{execution_id}}/restart"): CALLER,
    ("POST", f"{V1}/memory/set"): AGENT,
    ("POST", f"{V1}/memory/get"): AGENT,
    ("POST", f"{V1}/memory/delete"): AGENT,
    ("GET", f"{V1}/memory/list"): AGENT,
    ("POST", f"{V1}/memory/vector/set"): AGENT,
    ("POST", f"{V1}/memory/vector/delete"): AGENT,
    ("POST", f"{V1}/memory/vector/search"): AGENT,
    ("GET", f"{V1}/memory/events/sse"): AGENT,
    ("GET", f"{V1}/memory/events/history"): AGENT,
    ("GET", f"{V1}/discovery/capabilities"): CALLER,
    ("POST", f"{V1}/agents/{{node_id}}/executions/{{execution_id}}/request-approval"): AGENT,
    ("GET", f"{V1}/agents/{{node_id}}/executions/{{execution_id}}/approval-status"): AGENT,
    ("POST", f"{V1}/agents/{{node_id}}/executions/{{execution_id}}/awaiter-status"): AGENT,
    ("POST", f"{V1}/executions/{{execution_id}}/approve"): CALLER,
    ("POST", f"{V1}/executions/{{execution_id}}/reject"): CALLER,
    ("GET", f"{V1}/health"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): ADMIN,
}
# Who is let in, by access: None is a request without a key.
LET_IN: dict[Access, set[Role | None]] = {
    PUBLIC: {None, *Role},
    REPORT: {None, *Role},  # a report needs no key, but proof (test_ownership.py)
    CALLER: set(Role),
    AGENT: {Role.AGENT, Role.ADMIN},
    ADMIN: {Role.ADMIN},
}
PARAMS = {
    "{target}": "e2e.echo",
    "{execution_id}": "exec_x",
    "{node_id}": "e2e",
    "{run_id}": "run_x",
}
# A stream is asked to end at once, so that its answer can be read whole.
QUERIES = {f"{V1}/memory/events/sse": "?max_s=0.1"}
# An event stream let in would stream until the client leaves: a malformed Last-Event-ID, read
# only once the key was let in, makes it answer 400 at once instead.
STREAMS = {f"{V1}/events", f"{V1}/executions/{{execution_id}}/events"}
BODIES = {
    f"{V1}/nodes/register": registration("e2e", "http://127.0.0.1:9"),
    f"{V1}/nodes": registration("e2e", "http://127.0.0.1:9"),
}


def test_every_operation_has_an_owner_here_and_the_route_agrees() -> None:
    routes = {(op.method, op.path): op.access for op in OPERATIONS}
    assert set(routes) == set(OWNERS), "decide who may call each new route, and add it here"
    assert routes == OWNERS


async def test_each_role_reaches_exactly_the_operations_its_role_allows(
    settings: Settings,
) -> None:
    keys: dict[Role | None, str | None] = {
        None: None,
        Role.CALLER: await issue(settings, Role.CALLER),
        Role.AGENT: await issue(settings, Role.AGENT),
        Role.ADMIN: ADMIN_KEY,
    }
    wrong = []
    async with served(settings, key=None) as api:
        for (method, path), access in OWNERS.items():
            url = path
            for name, value in PARAMS.items():
                url = url.replace(name, value)
            url += QUERIES.get(path, "")
            for role, key in keys.items():
                answer = await api.request(
                    method,
                    url,
                    json=BODIES.get(path, {}) if method != "GET" else None,
                    headers={
                        **(bearer(key) if key else {}),
                        **({"Last-Event-ID": "x"} if path in STREAMS else {}),
                    },
                )
                refused = answer.status_code in (401, 403)
                if refused == (role in LET_IN[access]):
                    wrong.append(f"{method} {path} as {role}: {answer.status_code}")
                if refused and role is None:
                    assert answer.status_code == 401, (method, path)
    assert wrong == []
