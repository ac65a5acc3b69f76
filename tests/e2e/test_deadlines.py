"""Per-execution deadlines: the sweep turns overdue executions into `timeout`, and a late
callback cannot change them any more."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import System, deployed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_deadlines(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        execution_deadline_s=2,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
    ) as deployment:
        yield deployment


def test_an_execution_whose_callback_never_comes_times_out_at_its_deadline(
    short_deadlines: System,
) -> None:
    execution_id = short_deadlines.submit("e2e.late")
    doc = short_deadlines.wait(execution_id, timeout_s=15)
    assert doc["status"] == "timeout"
    assert "deadline" in doc["error"]


def test_a_late_callback_after_the_timeout_is_409_and_changes_nothing(
    short_deadlines: System,
) -> None:
    execution_id = short_deadlines.submit("e2e.late")
    timed_out = short_deadlines.wait(execution_id, timeout_s=15)
    late = short_deadlines.http.post(
        f"/api/v1/executions/{execution_id}/status",
        json={"status": "succeeded", "result": {"too": "late"}},
    )
    assert late.status_code == 409
    assert late.json()["code"] == "invalid_transition"
    assert short_deadlines.http.get(f"/api/v1/executions/{execution_id}").json() == timed_out
