"""The first README command's engine: `agentfield-arq run` starts everything on an embedded
Redis, prints the walkthrough, serves the seed flow, and stops every child on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentfield_arq.kernel.status import TERMINAL_STATUSES
from agentfield_arq.ops.embedded import free_port

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 60.0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_run_serves_the_seed_flow_and_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AGENTFIELD_ARQ_API_PORT": str(port),
        "AGENTFIELD_ARQ_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("AGENTFIELD_ARQ_REDIS_URL", None)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "agentfield_arq", "run"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Ctrl-C stops everything" not in log.read_text():
            assert run.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        assert (
            f"curl -s -X POST {url}/api/v1/execute/async/finance.deep_analysis" in log.read_text()
        )
        assert (tmp_path / "data" / "redis.url").read_text().startswith("redis://127.0.0.1:")
        answer = httpx.post(
            f"{url}/api/v1/execute/async/finance.deep_analysis", json={"input": {"quarter": "Q3"}}
        )
        assert answer.status_code == 202
        execution_id = answer.json()["execution_id"]
        doc: dict[str, object] = {}
        while doc.get("status") not in TERMINAL_STATUSES:
            assert time.monotonic() < deadline + 30, doc
            doc = httpx.get(f"{url}/api/v1/executions/{execution_id}").json()
            time.sleep(0.05)
        assert doc["status"] == "succeeded"
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 0, log.read_text()
    pids = [int(p) for p in re.findall(r"pid=(\d+)", log.read_text())]
    assert len(pids) >= 5  # redis, api, two workers, at least one agent process
    assert all(_gone(pid) for pid in pids), log.read_text()
