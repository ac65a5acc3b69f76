"""Which key a request carries, and which roles reach which operations."""

from __future__ import annotations

from agentfield_arq.api.access import Access, allows, presented_key
from agentfield_arq.core.credentials import Role


def test_the_bearer_header_wins_over_x_api_key() -> None:
    both = {"authorization": "Bearer afk_one", "x-api-key": "afk_two"}
    assert presented_key(both) == "afk_one"
    assert presented_key({"authorization": "Basic abc", "x-api-key": "afk_two"}) == "afk_two"
    assert presented_key({"authorization": "Bearer "}) is None


def test_each_role_reaches_its_own_access_and_those_below_it() -> None:
    reached = {role: {a for a in Access if allows(role, a)} for role in Role}
    assert reached[Role.CALLER] == {Access.PUBLIC, Access.REPORT, Access.CALLER}
    assert reached[Role.AGENT] == {Access.PUBLIC, Access.REPORT, Access.CALLER, Access.AGENT}
    assert reached[Role.ADMIN] == set(Access)
