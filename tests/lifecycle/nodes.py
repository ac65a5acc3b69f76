"""Rules of the node registry: registration, heartbeat.lua, expiry and forget_nodes.lua."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from agentfield_arq.kernel.errors import (
    NodeNotFound,
)
from agentfield_arq.kernel.models import NodeRegistration, TargetSpec
from agentfield_arq.kernel.status import TargetKind
from tests.lifecycle.machine import MachineBase
from tests.lifecycle.model import (
    NAME,
    NODE,
    OTHER_NODE,
)


def _now_and_then(machine: MachineBase) -> bool:
    """Node rules are enabled one step in four, so that they do not crowd out the
    executions' (hypothesis draws among the enabled rules evenly)."""
    return machine.steps % 4 == 0


class NodeRules(MachineBase):
    """Nodes come, heartbeat, go silent and are listed."""

    @precondition(_now_and_then)
    @rule(node=st.sampled_from([NODE, OTHER_NODE]), kind=st.sampled_from(list(TargetKind)))
    def node_registers(self, node: str, kind: TargetKind) -> None:
        """A node (re-)registers, offering NAME as a reasoner or a skill."""
        spec = [TargetSpec(id=NAME)]
        registration = NodeRegistration(
            id=node,
            base_url="http://agent.test",
            reasoners=spec if kind is TargetKind.REASONER else [],
            skills=spec if kind is TargetKind.SKILL else [],
        )
        self.run(self.nodes.register(b"{}", registration))
        self.targets[node] = {NAME: kind.value}
        self.node_ids.add(node)
        self._stepped()

    @precondition(_now_and_then)
    @rule(node=st.sampled_from([NODE, OTHER_NODE]), status=st.sampled_from([None, "stopping"]))
    def node_heartbeats(self, node: str, status: str | None) -> None:
        """A heartbeat refreshes a registered node; an unknown one must register again."""
        try:
            self.run(self.nodes.heartbeat(node, status))
        except NodeNotFound:
            assert node not in self.targets, node
        else:
            assert node in self.targets, node
        self._stepped(f"heartbeat: {node in self.targets}")

    @precondition(lambda self: self.targets and _now_and_then(self))
    @rule(node=st.sampled_from([OTHER_NODE] * 3 + [NODE]))
    def node_goes_silent(self, node: str) -> None:
        """A node stops heartbeating for a week: Redis expires its record and targets (the
        node TTL is not tied to the executions' clock)."""
        self.run(self.redis.delete(self.keys.node(node), self.keys.node_targets(node)))
        self.targets.pop(node, None)
        self._stepped()

    @precondition(_now_and_then)
    @rule()
    def nodes_are_listed(self) -> None:
        """GET nodes lists the live ones and forgets (forget_nodes.lua) the expired ones."""
        listed = self.run(self.nodes.list())
        assert sorted(n["id"] for n in listed) == sorted(self.targets)
        self.node_ids = set(self.targets)
        self._stepped()
