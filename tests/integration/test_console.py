"""The operator's commands against the session's Redis, through `main` as the console script
runs it: tables, --json, where Redis is looked for, and one line when it is missing. `main`
runs its own event loop (asyncio.run), so each call runs in a thread of its own, leaving this
thread's loop alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agentfield_arq.core.connection import connect
from agentfield_arq.core.execution import submit
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec
from agentfield_arq.ops.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The commands' environment: the session's Redis and the tests' key prefix."""
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("AGENTFIELD_ARQ_KEY_PREFIX", settings.key_prefix)
    return settings


async def _seed(settings: Settings, count: int) -> list[str]:
    """A node `finance` and `count` queued executions of it."""
    redis = connect(settings.redis_url)
    try:
        node = NodeRegistration(
            id="finance", base_url="http://127.0.0.1:9", reasoners=[TargetSpec(id="report")]
        )
        await NodeRegistry(redis, settings).register(b'{"id": "finance"}', node)
        store = ExecutionStore(redis, settings)
        request = ExecuteRequest(input={"quarter": "Q3"})
        return [(await submit(store, "finance.report", request, {})).execution_id
                for _ in range(count)]  # fmt: skip
    finally:
        await redis.aclose()


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_executions_list_prints_a_table_and_json(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _seed(env, 3)
    code, out, _ = await _run(capsys, "executions", "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["EXECUTION", "STATUS", "TARGET", "CREATED", "MS"]
    assert [r.split()[0] for r in rows] == sorted(ids, reverse=True)
    code, out, _ = await _run(capsys, "executions", "list", "--json", "--limit", "2")
    assert [e["execution_id"] for e in json.loads(out)] == sorted(ids, reverse=True)[:2]


async def test_show_cancel_and_retry_steer_one_execution(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (execution_id,) = await _seed(env, 1)
    code, out, _ = await _run(capsys, "executions", "cancel", execution_id, "--json")
    assert (code, json.loads(out)["status"]) == (0, "cancelled")
    code, out, _ = await _run(capsys, "executions", "retry", execution_id, "--json")
    retry = json.loads(out)
    assert (code, retry["status"]) == (0, "queued")
    code, out, _ = await _run(capsys, "executions", "show", retry["execution_id"])
    assert code == 0
    rows = {line.split()[0]: line.split()[-1] for line in out.strip().splitlines()[1:]}
    assert (rows["retry_of"], rows["status"]) == (execution_id, "queued")
    code, _, err = await _run(capsys, "executions", "retry", retry["execution_id"])
    assert code == 1
    assert err.count("\n") == 1
    assert "execution_not_terminal" in err


async def test_queue_and_nodes_report_the_system(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await _seed(env, 2)
    code, out, _ = await _run(capsys, "queue", "--json")
    state = json.loads(out)
    assert (code, state["queued_executions"], state["workers_alive"]) == (0, 2, 0)
    code, out, _ = await _run(capsys, "nodes")
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["NODE", "STATUS"]
    assert row.split()[:2] == ["finance", "active"]
    code, out, _ = await _run(capsys, "webhooks", "dead", "--json")
    assert (code, json.loads(out)["deliveries"]) == (0, [])


async def test_a_bad_filter_is_one_line_naming_it(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await _run(capsys, "executions", "list", "--status", "done")
    assert code == 1
    assert err.startswith("agentfield-arq: query parameter status:")
    assert err.count("\n") == 1


async def test_the_system_is_found_from_a_folder_below_its_data_folder(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / ".agentfield-arq").mkdir()
    (tmp_path / ".agentfield-arq" / "redis.url").write_text(settings.redis_url + "\n")
    below = tmp_path / "src" / "deep"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    monkeypatch.delenv("AGENTFIELD_ARQ_REDIS_URL", raising=False)
    monkeypatch.setenv("AGENTFIELD_ARQ_KEY_PREFIX", settings.key_prefix)
    code, out, _ = await _run(capsys, "queue", "--json")
    assert code == 0
    assert json.loads(out)["queued_jobs"] == 0


async def test_without_a_system_it_says_where_it_looked_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTFIELD_ARQ_REDIS_URL", raising=False)
    code, _, err = await _run(capsys, "nodes")
    assert code == 1
    assert err.count("\n") == 1
    assert str(tmp_path / ".agentfield-arq" / "redis.url") in err


async def test_a_redis_that_does_not_answer_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_URL", "redis://127.0.0.1:1/0")
    code, out, err = await _run(capsys, "executions", "list")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "does not answer" in err
    assert "Traceback" not in err
