"""End-to-end harness: real processes (uvicorn API, arq workers, the test agent) on 127.0.0.1.

Each test module gets its own system with its own key prefix on the session's Redis, so modules
do not see each other's executions and no flush is needed while processes run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from agentfield_arq.core.credentials import Role
from agentfield_arq.core.settings import from_env
from agentfield_arq.ops.embedded import EmbeddedRedis, free_port
from tests.e2e.agent_app import registration
from tests.e2e.receiver import Receiver
from tests.e2e.waits import notify_keyspace_events, on_writes, poll, terminal
from tests.keys import ADMIN_KEY, bearer, issue

T = TypeVar("T")

READY_TIMEOUT_S = 30.0
_prefixes = itertools.count(1)


class System:
    """The processes of one deployment and an HTTP client for its API. The processes connect
    to `connect_url` if given (a `redis+sentinel://` URL), the test's own waits to `redis_url`."""

    def __init__(self, redis_url: str, logs: Path, connect_url: str = "", **settings: Any) -> None:
        self.redis_url = redis_url
        self.logs = logs
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.agent_port = free_port()
        self.agent_url = f"http://127.0.0.1:{self.agent_port}"
        self.prefix = f"e2e{next(_prefixes)}"
        self.env = {
            **os.environ,
            "AGENTFIELD_ARQ_REDIS_URL": connect_url or redis_url,
            "AGENTFIELD_ARQ_KEY_PREFIX": self.prefix,
            "AGENTFIELD_ARQ_API_PORT": str(self.api_port),
            "AGENTFIELD_ARQ_ADMIN_KEY": ADMIN_KEY,
            # Where agents started for this system find its API, as the run command tells them.
            "AGENTFIELD_SERVER": self.api_url,
            # The test agents listen on 127.0.0.1, which a worker refuses unless allowed.
            "AGENTFIELD_ARQ_AGENT_ALLOW_LOOPBACK": "true",
            # The test agent sends no heartbeats: its registration keeps it live for the
            # module (tests of node liveness set a shorter lease).
            "AGENTFIELD_ARQ_NODE_LEASE_S": "3600",
            **{f"AGENTFIELD_ARQ_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.agent_keys: dict[str, str] = {}
        # The operator's client: it carries the deployment's admin key.
        self.http = httpx.Client(base_url=self.api_url, timeout=30.0, headers=bearer(ADMIN_KEY))

    def agent_key(self, node_id: str) -> str:
        """The agent key owning `node_id` (made on first use, the same at every restart)."""
        if node_id not in self.agent_keys:
            self.agent_keys[node_id] = self.issue_key(Role.AGENT, [node_id])
        return self.agent_keys[node_id]

    def issue_key(self, role: Role, nodes: Iterable[str] = ()) -> str:
        """A new API key of `role` (owning `nodes`) in this system's Redis."""
        settings = from_env({}, redis_url=self.redis_url, key_prefix=self.prefix)
        # In a thread of its own: asyncio.run here would clear this thread's current loop, and
        # code that later asks for one would make a loop nobody closes (a ResourceWarning).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, issue(settings, role, nodes)).result()

    def spawn(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start `python args...` with this system's environment, logging to a file."""
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, *args], env={**self.env, **env}, stdout=log, stderr=log
            )
        self.processes[name] = process
        return process

    def start_api(self) -> None:
        """Start the API and wait until it answers its health check."""
        self.spawn("api", "-m", "agentfield_arq", "api")
        self._wait_http(f"{self.api_url}/api/v1/health")

    def start_replica(self, name: str, **settings: str) -> str:
        """Start another API process on the same Redis; returns its URL."""
        port = free_port()
        env = {f"AGENTFIELD_ARQ_{k.upper()}": v for k, v in settings.items()}
        self.spawn(name, "-m", "agentfield_arq", "api", AGENTFIELD_ARQ_API_PORT=str(port), **env)
        url = f"http://127.0.0.1:{port}"
        self._wait_http(f"{url}/api/v1/health", any_status=True)
        return url

    def start_worker(self, name: str = "worker", **settings: str) -> subprocess.Popen[bytes]:
        """Start one arq worker process, with these settings changed for it alone."""
        env = {f"AGENTFIELD_ARQ_{k.upper()}": v for k, v in settings.items()}
        return self.spawn(name, "-m", "agentfield_arq", "worker", **env)

    def start_agent(self, node_id: str = "e2e", *args: str, instance_id: str = "") -> None:
        """Start the test agent (with `args`, e.g. `--lose-callbacks`) with an agent key owning
        `node_id`, and register it, as the process `instance_id` when one is given."""
        self.spawn("agent", "-m", "tests.e2e.agent_app", "--port", str(self.agent_port),
                   "--api", self.api_url, *args,
                   AGENTFIELD_API_KEY=self.agent_key(node_id))  # fmt: skip
        self._wait_http(f"{self.agent_url}/health")
        record = registration(node_id, self.agent_url, instance_id)
        answer = self.http.post("/api/v1/nodes/register", json=record)
        assert answer.status_code == 201, answer.text

    def _wait_http(self, url: str, *, any_status: bool = False) -> None:
        def answers() -> bool:
            try:
                status = httpx.get(url, timeout=5.0).status_code
            except httpx.HTTPError:
                return False
            return status == 200 or any_status

        poll(answers, f"{url} to answer; logs in {self.logs}", READY_TIMEOUT_S)

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL)."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        self.http.close()

    # ------------------------------------------------------------------ helpers used by tests

    def submit(self, target: str, body: dict[str, Any] | None = None, **kw: Any) -> str:
        """Queue an execution; returns its id."""
        answer = self.http.post(f"/api/v1/execute/async/{target}", json=body or {"input": {}}, **kw)
        assert answer.status_code == 202, answer.text
        execution_id: str = answer.json()["execution_id"]
        return execution_id

    def wait(self, execution_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """The execution's status document once it is terminal (its terminal entry on the
        lifecycle stream), or fail the test at the timeout."""
        return terminal(
            self.redis_url, self.prefix, execution_id, lambda: self.doc(execution_id), timeout_s
        )

    def doc(self, execution_id: str) -> dict[str, Any]:
        """The execution's status document as GET answers it now."""
        doc: dict[str, Any] = self.http.get(f"/api/v1/executions/{execution_id}").json()
        return doc

    def until(self, condition: Callable[[], T], what: str, timeout_s: float = 20.0) -> T:
        """`condition()` once it is truthy, re-checked whenever this system writes to Redis;
        fails the test after `timeout_s`."""
        return on_writes(self.redis_url, self.prefix, condition, what, timeout_s)

    def agent_calls(
        self, execution_id: str, within_s: float = 20.0, **expected: int
    ) -> dict[str, int]:
        """How the test agent saw this execution (calls, peak concurrency, in flight); with
        `expected` counts, as soon as the agent's counts are these, failing the test if they
        are not within `within_s` (the agent holds the request until they are)."""
        wait = {"wait_s": within_s} if expected else {}
        answer = httpx.get(
            f"{self.agent_url}/calls/{execution_id}",
            params={**expected, **wait},
            timeout=within_s + 10,
        )
        stats: dict[str, int] = answer.json()
        assert answer.status_code == 200, f"{execution_id}: {stats}, not {expected}, in {within_s}s"
        return stats


@pytest.fixture(scope="module")
def e2e_redis(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The session's Redis; e2e modules isolate themselves by key prefix, not by flushing, and
    wait on its keyspace notifications instead of polling (turned off again afterwards, so that
    the other tiers do not pay for them)."""
    notify_keyspace_events(redis_server.url, "KA")
    yield redis_server.url
    notify_keyspace_events(redis_server.url, "")


@contextlib.contextmanager
def deployed(
    redis_url: str,
    logs: Path,
    *,
    workers: int = 1,
    agent: bool = True,
    connect_url: str = "",
    **settings: Any,
) -> Iterator[System]:
    """A running System: the API, `workers` workers (`worker`, or `worker-1`, `worker-2`...)
    and, unless `agent` is False, the test agent registered as node `e2e`. Every process is
    stopped on exit, also when one of them fails to come up."""
    deployment = System(redis_url, logs, connect_url, **settings)
    try:
        deployment.start_api()
        for n in range(1, workers + 1):
            deployment.start_worker("worker" if workers == 1 else f"worker-{n}")
        if agent:
            deployment.start_agent()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback for the module's deliveries."""
    server = Receiver("127.0.0.1")
    yield server
    server.close()


@pytest.fixture(scope="module")
def system(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API + one worker + the test agent registered as node `e2e`, short timeouts."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        agent_timeout_s=2,
        agent_max_attempts=3,
        agent_retry_base_s=0.05,
        agent_retry_max_s=0.2,
        sync_timeout_s=3,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
    ) as deployment:
        yield deployment
