"""arq job functions, each a few lines over `Runner`, `Deliverer` and `Cancellation` of the core.

A Redis outage inside a job is not the job's failure: arq would record it as failed and drop
it from the queue (no result is kept), leaving its execution to the deadline sweep. The job is
retried instead, after the outage delay; if Redis is still away, arq's own retry step fails
too, and the job waits in the queue until its in-progress lock expires.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from arq import Retry

from agentfield_arq.core.arq_bridge import OUTAGE_CAP_S, OUTAGE_ERRORS
from agentfield_arq.core.cancellation import Cancellation
from agentfield_arq.core.delivery import Deliverer, job_max_tries
from agentfield_arq.core.runner import Runner

T = TypeVar("T")


def _runner(ctx: dict[str, Any]) -> Runner:
    runner: Runner = ctx["runner"]
    return runner


async def _outlasting_outages(step: Awaitable[T]) -> T:
    try:
        return await step
    except OUTAGE_ERRORS as exc:
        raise Retry(defer=OUTAGE_CAP_S) from exc


async def run_execution(ctx: dict[str, Any], execution_id: str) -> None:
    """Invoke the execution's agent once; what is tried again after a call is queued again as
    a new job, and this job is deferred by arq only while the node is at its cap."""
    runner = _runner(ctx)
    last_try = ctx["job_try"] >= runner.settings.max_job_tries
    delay = await _outlasting_outages(
        runner.run(execution_id, job_id=ctx["job_id"], last_try=last_try)
    )
    if delay is not None:
        raise Retry(defer=delay)


async def deliver_webhook(ctx: dict[str, Any], execution_id: str) -> None:
    """One attempt to deliver the execution's webhook; a failed one is retried by arq after
    the schedule's wait. The agent is never run again."""
    deliverer: Deliverer = ctx["deliverer"]
    last_try = ctx["job_try"] >= job_max_tries(deliverer.settings)
    delay = await _outlasting_outages(deliverer.deliver(execution_id, last_try=last_try))
    if delay is not None:
        raise Retry(defer=delay)


async def tell_agent(ctx: dict[str, Any], execution_id: str) -> None:
    """A cancelled or timed-out execution: tell its agent to stop (once, best-effort), and end
    a cancelled one's descendants."""
    cancellation: Cancellation = ctx["cancellation"]
    await _outlasting_outages(cancellation.tell_agent(execution_id))


async def notify_webhook(ctx: dict[str, Any], execution_id: str, event: str, bucket: str) -> None:
    """One attempt at a `started` or `progress` webhook notice; not retried."""
    deliverer: Deliverer = ctx["deliverer"]
    await deliverer.notify(execution_id, event, bucket)


async def sweep_deadlines(ctx: dict[str, Any]) -> int:
    """Periodic: overdue running or queued executions become `timeout`."""
    return await _outlasting_outages(_runner(ctx).sweep())
