"""Job functions: a write no replica confirmed is retried like a Redis outage, not failed."""

from __future__ import annotations

from typing import Any

import pytest
from arq import Retry

from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.errors import NotReplicated
from agentfield_arq.workers.jobs import run_execution


class Unconfirmed:
    """A runner whose every transition reaches no replica."""

    settings = Settings()

    async def run(self, execution_id: str, job_id: str, last_try: bool) -> float | None:
        raise NotReplicated("0 of 1 replicas confirmed the write")


async def test_a_run_whose_outcome_no_replica_confirmed_is_retried() -> None:
    ctx: dict[str, Any] = {"runner": Unconfirmed(), "job_try": 1, "job_id": "exec_1"}
    with pytest.raises(Retry):
        await run_execution(ctx, "exec_1")
