"""The keys a deployment starts with: the admin key file and the agent keys derived from it."""

from __future__ import annotations

from pathlib import Path

from agentfield_arq.core.credentials import well_formed
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
