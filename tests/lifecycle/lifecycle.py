"""The lifecycle machine, composed of its rules and invariants, and the two ways to run it."""

from __future__ import annotations

from collections.abc import Callable

from tests.lifecycle.deliveries import DeliveryRules
from tests.lifecycle.executions import ExecutionRules
from tests.lifecycle.invariants import Invariants
from tests.lifecycle.leases import LeaseRules
from tests.lifecycle.model import (
    Backend,
)
from tests.lifecycle.nodes import NodeRules
from tests.lifecycle.slots import SlotRules


class LifecycleMachine(ExecutionRules, DeliveryRules, NodeRules, SlotRules, LeaseRules, Invariants):
    """Two workers, two delivery workers, a late agent, a caller, the sweep, arq and the clock,
    against the real scripts (see the package docstring)."""


def machine_for(backend: Backend) -> type[LifecycleMachine]:
    """The machine class bound to one tier's backend."""
    return type("Lifecycle", (LifecycleMachine,), {"backend": backend})


def replay(backend: Backend, sequence: Callable[[LifecycleMachine], None]) -> None:
    """Run one named sequence on a fresh machine, checking every invariant after each step."""
    machine = type("Replay", (LifecycleMachine,), {"backend": backend, "replaying": True})()
    try:
        machine.check()
        sequence(machine)
    finally:
        machine.teardown()
