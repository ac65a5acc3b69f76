"""The first README command's engine: `agentfield-arq run` starts everything on an embedded
Redis, prints the walkthrough, serves the seed flow, and stops every child on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import from_env
from agentfield_arq.ops.embedded import free_port
from tests.e2e.waits import Output, terminal
from tests.keys import bearer

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 60.0
RESULT_TIMEOUT_S = 30.0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _start(
    tmp_path: Path, port: int, *args: str, env: dict[str, str], drop: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], Output]:
    """`agentfield-arq run *args` serving on `port` with its data under `tmp_path`, the
    `AGENTFIELD_ARQ_` settings `drop` left out of its environment; its output followed."""
    full = {
        **os.environ,
        "AGENTFIELD_ARQ_API_PORT": str(port),
        "AGENTFIELD_ARQ_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    for name in drop:
        full.pop(f"AGENTFIELD_ARQ_{name}", None)
    run = subprocess.Popen(
        [sys.executable, "-m", "agentfield_arq", "run", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert run.stdout is not None
    return run, Output(run.stdout, tmp_path / "run.log")


def _executed(
    url: str, redis_url: str, auth: dict[str, str], target: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit `target` with the seed input as `auth`; its 202 answer and its terminal document."""
    answer = httpx.post(
        f"{url}/api/v1/execute/async/{target}", json={"input": {"quarter": "Q3"}}, headers=auth
    )
    assert answer.status_code == 202, answer.text
    accepted: dict[str, Any] = answer.json()
    execution_id = accepted["execution_id"]
    doc = terminal(
        redis_url,
        from_env().key_prefix,
        execution_id,
        lambda: httpx.get(f"{url}/api/v1/executions/{execution_id}", headers=auth).json(),
        RESULT_TIMEOUT_S,
    )
    return accepted, doc


def test_run_serves_the_seed_flow_and_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    port = free_port()
    run, output = _start(tmp_path, port, env={}, drop=("REDIS_URL",))
    try:
        output.wait_for("Ctrl-C stops everything", READY_TIMEOUT_S)
        url = f"http://127.0.0.1:{port}"
        assert f"curl -s -X POST {url}/api/v1/execute/async/finance.deep_analysis" in output.text
        redis_url = (tmp_path / "data" / "redis.url").read_text().strip()
        assert redis_url.startswith("redis://127.0.0.1:")
        key_file = tmp_path / "data" / "api-key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        auth = bearer(key_file.read_text().strip())
        assert f"-H 'Authorization: {auth['Authorization']}'" in output.text
        anonymous = httpx.post(f"{url}/api/v1/execute/async/finance.deep_analysis", json={})
        assert anonymous.status_code == 401
        _, doc = _executed(url, redis_url, auth, "finance.deep_analysis")
        assert doc["status"] == "succeeded"
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 0, output.text
    # Every child has closed its end of the pipe once it is gone.
    log = output.ended(30)
    pids = [int(p) for p in re.findall(r"pid=(\d+)", log)]
    assert len(pids) >= 5  # redis, api, two workers, at least one agent process
    assert all(_gone(pid) for pid in pids), log


MID_WORK = 40


def test_ctrl_c_mid_work_leaves_no_execution_running(tmp_path: Path, e2e_redis: str) -> None:
    port = free_port()
    prefix = "ctrlc"
    # The session's Redis (under a prefix of its own), so that what was left can be read after
    # the run command is gone.
    env = {"AGENTFIELD_ARQ_REDIS_URL": e2e_redis, "AGENTFIELD_ARQ_KEY_PREFIX": prefix}
    run, output = _start(tmp_path, port, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        output.wait_for("Ctrl-C stops everything", READY_TIMEOUT_S)
        auth = bearer((tmp_path / "data" / "api-key").read_text().strip())
        ids = [
            httpx.post(
                f"{url}/api/v1/execute/async/finance.deep_analysis",
                json={"input": {"quarter": "Q3"}},
                headers=auth,
            ).json()["execution_id"]
            for _ in range(MID_WORK)
        ]
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(120) == 0, output.text
    keys = Keys(prefix)
    with redis.Redis.from_url(e2e_redis) as client:
        docs = [json.loads(client.get(keys.status_doc(i)) or b"{}") for i in ids]
    statuses = Counter(d["status"] for d in docs)
    print(f"\nCtrl-C mid-work: {statuses}")
    assert statuses["running"] == 0, output.text
    assert set(statuses) <= {"succeeded", "queued"}


def test_run_with_a_shard_serves_the_quarterly_report_across_both_redis(tmp_path: Path) -> None:
    port = free_port()
    run, output = _start(
        tmp_path,
        port,
        "--shards",
        "1",
        env={"AGENTFIELD_ARQ_WORKERS": "1"},
        drop=("REDIS_URL", "REDIS_SHARDS", "REDIS_ROUTES"),
    )
    try:
        output.wait_for("Ctrl-C stops everything", READY_TIMEOUT_S)
        output.wait_for("AGENTFIELD_ARQ_REDIS_ROUTES=", 10.0)
        assert "orchestrator on 0" in output.text
        url = f"http://127.0.0.1:{port}"
        redis_url = (tmp_path / "data" / "redis.url").read_text().strip()
        auth = bearer((tmp_path / "data" / "api-key").read_text().strip())
        accepted, doc = _executed(url, redis_url, auth, "orchestrator.generate_quarterly_report")
        assert doc["status"] == "succeeded", doc
        tree = httpx.get(f"{url}/api/v1/runs/{accepted['run_id']}", headers=auth).json()
        children = [c["execution_id"] for c in tree["roots"][0]["children"]]
        assert len(children) == 3
        assert all(child.endswith("1") for child in children)  # on shard 1's Redis
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 0, output.text
    log = output.ended(30)
    pids = [int(p) for p in re.findall(r"pid=(\d+)", log)]
    assert all(_gone(pid) for pid in pids), log
