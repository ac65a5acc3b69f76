"""arq job functions; each is a few lines over `Runner` and `Deliverer` of `agentfield_arq.core`."""

from __future__ import annotations

from typing import Any

from arq import Retry

from agentfield_arq.core.delivery import Deliverer, job_max_tries
from agentfield_arq.core.runner import Runner


def _runner(ctx: dict[str, Any]) -> Runner:
    runner: Runner = ctx["runner"]
    return runner


async def run_execution(ctx: dict[str, Any], execution_id: str) -> None:
    """Invoke the execution's agent once; a transient failure is retried by arq after a backoff."""
    runner = _runner(ctx)
    last_try = ctx["job_try"] >= runner.settings.max_job_tries
    delay = await runner.run(execution_id, last_try=last_try)
    if delay is not None:
        raise Retry(defer=delay)


async def deliver_webhook(ctx: dict[str, Any], execution_id: str) -> None:
    """One attempt to deliver the execution's webhook; a failed one is retried by arq after
    the schedule's wait. The agent is never run again."""
    deliverer: Deliverer = ctx["deliverer"]
    last_try = ctx["job_try"] >= job_max_tries(deliverer.settings)
    delay = await deliverer.deliver(execution_id, last_try=last_try)
    if delay is not None:
        raise Retry(defer=delay)


async def notify_webhook(ctx: dict[str, Any], execution_id: str, event: str, bucket: str) -> None:
    """One attempt at a `started` or `progress` webhook notice; not retried."""
    deliverer: Deliverer = ctx["deliverer"]
    await deliverer.notify(execution_id, event, bucket)


async def sweep_deadlines(ctx: dict[str, Any]) -> int:
    """Periodic: overdue running or queued executions become `timeout`."""
    return await _runner(ctx).sweep()
