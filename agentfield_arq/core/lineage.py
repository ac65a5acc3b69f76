"""Lineage across Redis: a child execution (an agent's `app.call`, its parent named) made on
another Redis of the routes (core/routing.py) than its parent's.

On one Redis, create.lua refuses a child of a cancelled parent and puts the child in its
parent's children set, whose existence makes the parent's cancel queue the cascade
(finish.lua), all in the create's step. A child on another Redis cannot share that step, so
the same is done in three, in this order: the parent is read where it lives (cancelled: the
child is refused, as on one Redis, before anything is written); the child is made on its own
Redis; then the child joins the parent's children set there, in one MULTI that reads the
parent's status again. A cancel of the parent after that MULTI queues the cascade, which
finds the child made; a cancel between the first read and the MULTI has its cascade possibly
read before the child existed, and is seen by the MULTI, which cancels the child here.
"""

from __future__ import annotations

import logging

from agentfield_arq.core.keys import NON_TERMINAL_GRACE_S
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339, text
from agentfield_arq.kernel.errors import InvalidTransition
from agentfield_arq.kernel.status import Status

logger = logging.getLogger(__name__)


class Parent:
    """An execution's parent on another Redis than the child's: `store` holds it."""

    def __init__(self, store: ExecutionStore, execution_id: str) -> None:
        self.store = store
        self.execution_id = execution_id

    async def check(self) -> str | None:
        """Before the child is made: InvalidTransition if the parent is cancelled (create.lua's
        refusal, word for word), else the parent's run id (None: there is no such parent)."""
        status, run_id = await self.store.redis.hmget(  # type: ignore[misc]  # redis-py's async stubs
            self.store.keys.execution(self.execution_id), ["status", "run_id"]
        )
        if status is not None and text(status) == Status.CANCELLED:
            raise InvalidTransition(
                f"parent execution '{self.execution_id}' is cancelled; its run takes no new "
                "children",
                status="cancelled",
            )
        return None if run_id is None else text(run_id)

    async def adopt(self, child: ExecutionStore, child_id: str, *, same_run: bool) -> None:
        """After the child `child_id` was made in `child`'s Redis: a child in the parent's run
        (`same_run`) joins the parent's children set (expiring as a record does), and the
        parent's status is read in the same step; a parent cancelled by then has the child
        cancelled here."""
        keys = self.store.keys
        async with self.store.redis.pipeline(transaction=True) as pipe:
            if same_run:
                pipe.sadd(keys.children(self.execution_id), child_id)
                ttl_s = int(self.store.settings.execution_deadline_s) + NON_TERMINAL_GRACE_S
                pipe.expire(keys.children(self.execution_id), ttl_s)
            pipe.hget(keys.execution(self.execution_id), "status")
            *_, status = await pipe.execute()
        if status is None or text(status) != Status.CANCELLED:
            return
        now = now_ms()
        error = f"parent execution {self.execution_id} was cancelled"
        cancelled = await child.finish(child_id, Status.CANCELLED, rfc3339(now), now, error=error)
        if cancelled.outcome is Outcome.OK:
            logger.info("cancel execution_id=%s: its parent %s was", child_id, self.execution_id)
