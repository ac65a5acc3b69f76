"""The keys a deployment starts with: the admin key file and the agent keys derived from it."""

from __future__ import annotations

from pathlib import Path

from agentfield_arq.api.access import Access, allows, presented_key
from agentfield_arq.core.credentials import Role, well_formed
from agentfield_arq.ops.cli import walkthrough
from agentfield_arq.ops.keyring import admin_key, agent_keys


def test_the_admin_key_is_written_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    key = admin_key(tmp_path / "data")
    path = tmp_path / "data" / "api-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == key + "\n"
    assert well_formed(key)


def test_a_later_start_finds_the_same_admin_key(tmp_path: Path) -> None:
    assert admin_key(tmp_path) == admin_key(tmp_path)


def test_agent_keys_are_the_same_at_every_start_and_differ_by_node() -> None:
    first = agent_keys("afk_" + "a" * 43, ["finance", "research"])
    assert first == agent_keys("afk_" + "a" * 43, ["finance", "research"])
    assert first["finance"] != first["research"]
    assert first != agent_keys("afk_" + "b" * 43, ["finance", "research"])
    assert all(well_formed(key) for key in first.values())


def test_the_walkthrough_sends_the_key_with_every_command() -> None:
    text = walkthrough("http://127.0.0.1:8080", 2, api_key="afk_secret")
    commands = text.count("curl ")
    assert commands == text.count("-H 'Authorization: Bearer afk_secret'") == 5


def test_the_bearer_header_wins_over_x_api_key() -> None:
    both = {"authorization": "Bearer afk_one", "x-api-key": "afk_two"}
    assert presented_key(both) == "afk_one"
    assert presented_key({"authorization": "Basic abc", "x-api-key": "afk_two"}) == "afk_two"
    assert presented_key({"authorization": "Bearer "}) is None


def test_each_role_reaches_its_own_access_and_those_below_it() -> None:
    reached = {role: {a for a in Access if allows(role, a)} for role in Role}
    assert reached[Role.CALLER] == {Access.PUBLIC, Access.CALLER}
    assert reached[Role.AGENT] == {Access.PUBLIC, Access.CALLER, Access.AGENT}
    assert reached[Role.ADMIN] == set(Access)
