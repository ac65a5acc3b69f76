"""Agent processes for end-to-end tests: start and stop them, and look at what they ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from agentfield_arq.core.keys import Keys
from tests.e2e.conftest import System

EXAMPLES = Path(__file__).parents[2] / "examples"
SDK_AGENT = Path(__file__).with_name("sdk_agent.py")
REGISTER_TIMEOUT_S = 30.0


def node(system: System, node_id: str) -> dict[str, Any]:
    """The node's registry record, or {} while it is unknown."""
    answer = system.http.get(f"/api/v1/nodes/{node_id}")
    return answer.json() if answer.status_code == 200 else {}


def start_node(system: System, node_id: str, *argv: str, **env: str) -> None:
    """Start an agent program and wait until it has registered (again) and is active. `argv`
    is the whole command; by default this interpreter runs the example or SDK test agent of
    that name. It runs with the agent key owning `node_id` unless `env` names another."""
    before = node(system, node_id).get("base_url")
    if not argv:
        argv = (sys.executable, str(SDK_AGENT if node_id == "sdk" else EXAMPLES / f"{node_id}.py"))
    with (system.logs / f"{node_id}.log").open("ab") as log:
        key = {"AGENTFIELD_API_KEY": system.agent_key(node_id)}
        process = subprocess.Popen(argv, env={**system.env, **key, **env}, stdout=log, stderr=log)
    system.processes[node_id] = process

    def registered() -> bool:
        assert process.poll() is None, f"{node_id} exited; logs in {system.logs}"
        record = node(system, node_id)
        return record.get("status") == "active" and record.get("base_url") != before

    system.until(registered, f"{node_id} to register; logs in {system.logs}", REGISTER_TIMEOUT_S)


def stop_node(system: System, node_id: str) -> subprocess.Popen[bytes]:
    """SIGTERM an agent, as a deploy or Ctrl-C would; returns the process to wait on."""
    process = system.processes.pop(node_id)
    process.terminate()
    return process


def execution_fields(system: System, execution_id: str) -> dict[str, str]:
    """The execution's Redis hash (attempt, phase, parent...), as operators see it."""
    client = redis.Redis.from_url(system.redis_url, decode_responses=True)
    try:
        return client.hgetall(Keys(system.prefix).execution(execution_id))  # type: ignore[return-value]
    finally:
        client.close()


def children(system: System, parent_id: str) -> dict[str, dict[str, str]]:
    """The executions started with `parent_id` as their parent, by target."""
    client = redis.Redis.from_url(system.redis_url, decode_responses=True)
    found: dict[str, dict[str, str]] = {}
    try:
        for key in client.scan_iter(match=f"{system.prefix}:exec:*", count=1000):
            if key.count(":") == 2 and client.hget(key, "parent_execution_id") == parent_id:
                fields: dict[str, str] = client.hgetall(key)  # type: ignore[assignment]
                fields["execution_id"] = key.rpartition(":")[2]  # the key names it, not a field
                found[fields["target"]] = fields
    finally:
        client.close()
    return found
