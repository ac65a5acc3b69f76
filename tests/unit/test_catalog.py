"""The run tree drawn from status documents, without Redis."""

from __future__ import annotations

from agentfield_arq.core.catalog import draw_tree
from agentfield_arq.kernel.codec import id_ms, new_id
from agentfield_arq.kernel.models import RunNode


def _node(execution_id: str, parent: str | None = None) -> RunNode:
    return RunNode(execution_id=execution_id, status="queued", parent_execution_id=parent)


def test_children_hang_under_their_parents_and_orphans_are_roots() -> None:
    roots = draw_tree([_node("a"), _node("b", "a"), _node("c", "b"), _node("d", "gone")])
    assert [r.execution_id for r in roots] == ["a", "d"]
    assert [c.execution_id for c in roots[0].children] == ["b"]
    assert [c.execution_id for c in roots[0].children[0].children] == ["c"]


def test_a_cycle_drawn_by_headers_still_shows_every_execution_once() -> None:
    roots = draw_tree([_node("a", "b"), _node("b", "a"), _node("c", "c")])
    shown: list[str] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        shown.append(node.execution_id)
        stack.extend(node.children)
    assert sorted(shown) == ["a", "b", "c"]


def test_an_ids_creation_time_reads_back_from_it() -> None:
    assert id_ms(new_id("exec", 1_764_592_639_869), "exec") == 1_764_592_639_869
    assert id_ms("exec_nothing", "exec") is None
    assert id_ms(new_id("run", 5), "exec") is None
    assert id_ms("exec_01m8bxrfvx34vx432fzqqd6g9!", "exec") is not None
    assert id_ms("exec_01m8bxrfv!34vx432fzqqd6g9n", "exec") is None
