"""The run command's supervisor restarts a child that dies, after a growing delay. Its children
are real processes (a Python that exits at once), so this lives with the tests that spawn."""

from __future__ import annotations

import os
import sys

import pytest

from agentfield_arq.ops.supervisor import Child, Supervisor

pytestmark = pytest.mark.e2e


def test_a_dead_child_is_restarted_after_its_delay() -> None:
    child = Child("crasher", [sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor([child], dict(os.environ))
    supervisor.start()
    assert child.process is not None
    first_pid = child.process.pid
    assert child.process.wait(30) == 3
    supervisor._check(child, now=100.0)
    assert child.process is None
    assert child.next_start == 100.5
    supervisor._check(child, now=100.2)
    assert child.process is None
    supervisor._check(child, now=100.6)
    assert child.process is not None
    assert child.process.pid != first_pid
    assert child.restarts == 1
    child.process.wait(30)
    supervisor._check(child, now=200.0)
    assert child.next_start == 201.0  # the second failure in a row waits twice as long


def test_children_stop_stage_by_stage_with_each_stage_s_hook_in_between() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    first = Child("first", sleeper, stage=0)
    second = Child("second", sleeper, stage=1)
    seen: list[tuple[int | None, int | None]] = []

    def between() -> None:
        assert first.process is not None
        assert second.process is not None
        seen.append((first.process.poll(), second.process.poll()))

    supervisor = Supervisor([second, first], dict(os.environ), after_stage={0: between})
    supervisor.start()
    supervisor.stop()
    assert seen == [(-15, None)]  # the first stage gone (SIGTERM), the second still running
    assert second.process is not None
    assert second.process.poll() == -15
