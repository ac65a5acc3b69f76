"""An idle worker starts a new execution at once, not at its next poll of the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import System, deployed

pytestmark = pytest.mark.e2e

POLL_DELAY_S = 5.0


@pytest.fixture(scope="module")
def slow_polling(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        worker_poll_delay_s=POLL_DELAY_S,
        sync_timeout_s=30,
    ) as deployment:
        yield deployment


def test_sequential_executions_do_not_wait_for_the_workers_poll_delay(
    slow_polling: System,
) -> None:
    warm = slow_polling.http.post("/api/v1/execute/e2e.echo", json={"input": {}})
    assert warm.json()["status"] == "succeeded"
    for _ in range(3):
        started = time.monotonic()
        answer = slow_polling.http.post("/api/v1/execute/e2e.echo", json={"input": {}})
        assert answer.json()["status"] == "succeeded"
        # Polling alone would wait up to 5 s (2.5 s on average) before the worker noticed.
        assert time.monotonic() - started < POLL_DELAY_S / 2
