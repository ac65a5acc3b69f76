"""The execution an agent is working on, carried through its asyncio tasks by a context variable.

The control plane names an execution in the headers of the request that starts it; a reasoner's
`app.call` reads them back from here, so that child executions join the same run and name their
parent without the reasoner passing anything along.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

import msgspec


class ExecutionContext(msgspec.Struct, kw_only=True, frozen=True):
    """Who is running: the execution and run ids the control plane sent, and their lineage."""

    execution_id: str | None = None
    run_id: str | None = None
    parent_execution_id: str | None = None
    session_id: str | None = None
    actor_id: str | None = None
    # The control plane's proof token for this execution, sent back on its callback only.
    callback_token: str | None = None
    # W3C trace context the control plane sent: passed on to children and callbacks.
    traceparent: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ExecutionContext:
        """Read AgentField's headers (`X-Workflow-ID` stands in for a missing `X-Run-ID`)."""

        def get(name: str) -> str | None:
            return headers.get(name) or None

        return cls(
            execution_id=get("x-execution-id"),
            run_id=get("x-run-id") or get("x-workflow-id"),
            parent_execution_id=get("x-parent-execution-id"),
            session_id=get("x-session-id"),
            actor_id=get("x-actor-id"),
            callback_token=get("x-callback-token"),
            traceparent=get("traceparent"),
        )

    def trace_headers(self) -> dict[str, str]:
        """The trace context to send with a report about this execution."""
        return {"traceparent": self.traceparent} if self.traceparent else {}

    def child_headers(self) -> dict[str, str]:
        """Headers that make a new execution a child of this one, in the same run (and the
        same trace)."""
        pairs = {
            "X-Run-ID": self.run_id,
            "X-Parent-Execution-ID": self.execution_id,
            "X-Session-ID": self.session_id,
            "X-Actor-ID": self.actor_id,
            "traceparent": self.traceparent,
        }
        return {name: value for name, value in pairs.items() if value}

    def scope_headers(self) -> dict[str, str]:
        """Headers that name this execution's memory scopes (and the execution itself), as
        AgentField's SDK sends them: the run is the workflow scope."""
        pairs = {
            "X-Execution-ID": self.execution_id,
            "X-Workflow-ID": self.run_id,
            "X-Session-ID": self.session_id,
            "X-Actor-ID": self.actor_id,
        }
        return {name: value for name, value in pairs.items() if value}


_current: ContextVar[ExecutionContext | None] = ContextVar("agentfield_arq_execution", default=None)


def current() -> ExecutionContext | None:
    """The execution being served by this task, or None outside any reasoner or skill."""
    return _current.get()


@contextlib.contextmanager
def entered(context: ExecutionContext) -> Iterator[ExecutionContext]:
    """Make `context` current for the duration of the block (and tasks started inside it)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
