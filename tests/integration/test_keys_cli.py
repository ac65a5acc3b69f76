"""`agentfield-arq keys create|list|revoke|provision` against the test session's Redis.

The command runs its own event loop (`asyncio.run`): each call runs in a thread of its own, so
that it neither sees nor replaces the loop of the test session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentfield_arq.core.settings import Settings
from agentfield_arq.ops.cli import main

pytestmark = pytest.mark.integration


async def cli(argv: list[str]) -> int:
    """`agentfield-arq ARGV...`, its exit status."""
    return await asyncio.to_thread(main, argv)


@pytest.fixture
def system_redis(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("AGENTFIELD_ARQ_KEY_PREFIX", settings.key_prefix)
    return settings


async def test_create_prints_the_key_once_and_list_shows_it_without_the_key(
    system_redis: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await cli(["keys", "create", "--role", "agent", "--node", "finance", "--name", "fin"]) == 0
    )
    created = capsys.readouterr().out.splitlines()
    key_id = created[0].split()[1]
    assert created[0] == f"created {key_id} (agent owning finance); the key, shown only now:"
    plain = created[1]
    assert plain.startswith("afk_")
    assert await cli(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith(f"{key_id}\tagent\tfinance\t")
    assert listed.rstrip().endswith("\tfin")
    assert plain not in listed


async def test_a_second_key_cannot_claim_a_node_id_another_key_owns(
    system_redis: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(["keys", "create", "--role", "agent", "--node", "finance"]) == 0
    assert await cli(["keys", "create", "--role", "agent", "--node", "finance"]) == 1
    assert "node 'finance' is owned by another key" in capsys.readouterr().err


async def test_revoke_removes_the_key_and_an_unknown_id_is_an_error(
    system_redis: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(["keys", "create", "--role", "caller"]) == 0
    key_id = capsys.readouterr().out.split()[1]
    assert await cli(["keys", "revoke", key_id]) == 0
    assert await cli(["keys", "list"]) == 0
    assert capsys.readouterr().out == f"revoked {key_id}\n"
    assert await cli(["keys", "revoke", key_id]) == 1


async def test_provision_writes_the_admin_key_and_one_agent_key_per_node(
    system_redis: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "provision", "--dir", str(tmp_path), "--node", "finance", "--node", "research"]
    assert await cli(argv) == 0
    first = {p.name: p.read_text() for p in (tmp_path / "agents").iterdir()}
    assert await cli(argv) == 0  # again: the same keys, stored again
    assert {p.name: p.read_text() for p in (tmp_path / "agents").iterdir()} == first
    assert set(first) == {"finance", "research"}
    assert (tmp_path / "agents" / "finance").stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert await cli(["keys", "list"]) == 0
    roles = sorted(line.split("\t")[:3] for line in capsys.readouterr().out.splitlines())
    assert roles == [
        ["run-admin", "admin", "-"],
        ["run-finance", "agent", "finance"],
        ["run-research", "agent", "research"],
    ]


async def test_run_stops_before_starting_anything_when_a_node_id_is_anothers(
    system_redis: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await cli(["keys", "create", "--role", "agent", "--node", "finance"]) == 0
    monkeypatch.setenv("AGENTFIELD_ARQ_DATA_DIR", str(tmp_path))
    assert await cli(["run"]) == 2
    assert "cannot provision the run's keys: node 'finance' is owned by another key" in (
        capsys.readouterr().err
    )
