"""Several API replicas share one Redis: a sync request waiting on one replica learns of a
completion reported to another, and a replica whose Redis is gone says so on /health."""

from __future__ import annotations

import httpx
import pytest

from agentfield_arq.ops.embedded import free_port
from tests.e2e.conftest import System
from tests.keys import ADMIN_KEY, bearer

pytestmark = pytest.mark.e2e


def test_a_sync_request_on_one_replica_ends_on_a_callback_received_by_another(
    system: System,
) -> None:
    other = system.start_replica("api-b")
    # The test agent reports to the first replica (system.api_url), never to this one.
    answer = httpx.post(
        f"{other}/api/v1/execute/e2e.accept",
        json={"input": {"delay": 0.3}},
        headers=bearer(ADMIN_KEY),
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"
    assert answer.json()["result"] == {"delay": 0.3}


def test_health_is_503_when_redis_does_not_answer(system: System) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    replica = system.start_replica("api-no-redis", redis_url=dead)
    answer = httpx.get(f"{replica}/api/v1/health", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["status"] == "unhealthy"
    assert answer.json()["code"] == "unavailable"
