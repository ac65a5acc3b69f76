"""The processes of a benchmark run: our own Redis on a free port, the API, workers, the inline
agent and the baselines, all on 127.0.0.1, all started here and all stopped here.

Nothing outside this run is touched: the Redis is an `EmbeddedRedis` of our own (so FLUSHALL
between figures is safe), and every process is a child that `close()` stops by its pid.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.settings import ENV_PREFIX, Settings, from_env
from agentfield_arq.kernel.models import NodeRegistration, TargetSpec
from agentfield_arq.ops.embedded import EmbeddedRedis, free_port
from bench.load import ADMIN_KEY

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench"
NODE = "bench"
REASONER = "echo"
TARGET = f"{NODE}.{REASONER}"
BASELINE_QUEUE = "baseline:arq"
# Settings changed from their defaults (with loopback agents allowed, the agent being local):
# nothing drains the queue while the enqueue figure is measured, and the memory figure queues
# 100,000 at once; neither must meet the safety cap.
MAX_QUEUED = 10_000_000
# A stored caller key's rate and unfinished executions, far above what the enqueue load sends:
# its requests and executions are still counted (the lookup's INCR, create.lua's), never refused.
KEY_RATE_LIMIT = 100_000_000
# The per-node cap, above any fleet the bench starts (workers x concurrency).
NODE_CAP = 1_000_000
# The bench's agent registers once and sends no heartbeat: its node stays live this long (a
# 100,000-execution fill outlasts the default lease, and the node's executions were refused).
NODE_LEASE_S = 86_400
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class Harness:
    """Owns every process of the run; use as a context manager so that all of them stop."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.redis_server = EmbeddedRedis(workdir / "redis", appendonly=False)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""
        self.settings = Settings()
        self.admin: redis.Redis | None = None

    def __enter__(self) -> Harness:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.url = self.redis_server.start()
        self.settings = from_env(
            {}, redis_url=self.url, key_prefix=PREFIX, max_queued=MAX_QUEUED,
            node_lease_s=NODE_LEASE_S,
        )  # fmt: skip
        self.admin = redis.Redis.from_url(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(*list(self.processes))
        if self.admin is not None:
            self.admin.close()
        self.redis_server.stop()

    @property
    def redis(self) -> redis.Redis:
        """A synchronous admin client of our Redis (INFO, FLUSHALL, MEMORY USAGE)."""
        assert self.admin is not None, "use the harness as a context manager"
        return self.admin

    @property
    def keys(self) -> Keys:
        """Our deployment's keys."""
        return Keys(PREFIX)

    # ------------------------------------------------------------------ processes

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start `python -m args...`, logging to `logs/{name}.log`."""
        # `bench` is not an installed package: children find it (and the project) from here.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        # Settings of the caller's shell would change what is measured: defaults only.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", *args],
                env={**inherited, "PYTHONPATH": path, **(env or {})},
                stdout=log,
                stderr=log,
            )

    def stop(self, *names: str) -> None:
        """SIGTERM the named processes together, then SIGKILL any that linger."""
        stopping = [self.processes.pop(name) for name in names if name in self.processes]
        for process in stopping:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in stopping:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    async def profile(self, name: str, seconds: float, label: str) -> asyncio.subprocess.Process:
        """Sample one of our processes with py-spy for `seconds` (a flame graph lands in
        `profiles/{label}.svg`); await the returned process's `wait()` before reading it."""
        here = str(Path(sys.executable).parent)
        py_spy = shutil.which("py-spy", path=here) or shutil.which("py-spy")
        if py_spy is None:
            raise RuntimeError("--profile needs py-spy: install the bench extra")
        (self.workdir / "profiles").mkdir(exist_ok=True)
        with (self.logs / "py-spy.log").open("ab") as log:
            return await asyncio.create_subprocess_exec(
                py_spy, "record", "--nonblocking", "-p", str(self.pid(name)),
                "-d", str(max(1, round(seconds))), "-o",
                str(self.workdir / "profiles" / f"{label}.svg"), stdout=log, stderr=log,
            )  # fmt: skip

    def cpu_s(self, name: str) -> float:
        """CPU seconds (user + system) used so far by one of our processes, or by `redis`."""
        if name == "redis":
            assert self.redis_server.process is not None
            pid = self.redis_server.process.pid
        else:
            pid = self.pid(name)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def pid(self, name: str) -> int:
        """The pid of a running process of this run."""
        return self.processes[name].pid

    def ours_env(self, **settings: str) -> dict[str, str]:
        """The AGENTFIELD_ARQ_* environment of our API and workers."""
        env = {
            f"{ENV_PREFIX}REDIS_URL": self.url,
            f"{ENV_PREFIX}KEY_PREFIX": PREFIX,
            f"{ENV_PREFIX}MAX_QUEUED": str(MAX_QUEUED),
            f"{ENV_PREFIX}KEY_RATE_LIMIT": str(KEY_RATE_LIMIT),
            f"{ENV_PREFIX}KEY_MAX_ACTIVE": str(MAX_QUEUED),
            f"{ENV_PREFIX}ADMIN_KEY": ADMIN_KEY,
            f"{ENV_PREFIX}AGENT_ALLOW_LOOPBACK": "true",
            # One node takes every execution here: its cap would only halve the fleet that
            # the drain measures (the slots' Redis steps are still taken and measured).
            f"{ENV_PREFIX}NODE_MAX_IN_FLIGHT": str(NODE_CAP),
            f"{ENV_PREFIX}NODE_LEASE_S": str(NODE_LEASE_S),
        }
        env.update({f"{ENV_PREFIX}{k.upper()}": v for k, v in settings.items()})
        return env

    # ------------------------------------------------------------------ components

    async def start_agent(self, name: str = "agent", delay_s: float = 0.0) -> str:
        """The inline agent, answering each call after `delay_s`; returns its base URL."""
        port = free_port()
        self.spawn(name, "bench.agent", "--port", str(port), "--delay-s", str(delay_s))
        await self._wait_port(port, name)
        return f"http://127.0.0.1:{port}"

    async def start_later(self, api_port: int, delay_s: float) -> str:
        """The deferred agent (answers 202, reports to the API at `api_port` after `delay_s`);
        returns its base URL."""
        port = free_port()
        self.spawn("later", "bench.later", "--port", str(port), "--api-port", str(api_port),
                   "--delay", repr(delay_s))  # fmt: skip
        await self._wait_port(port, "later")
        return f"http://127.0.0.1:{port}"

    async def start_api(self) -> int:
        """Our API (one uvicorn process, as `agentfield-arq api` runs it); returns its port."""
        port = free_port()
        self.spawn("api", "agentfield_arq", "api", env=self.ours_env(api_port=str(port)))
        await self._wait_http(f"http://127.0.0.1:{port}/api/v1/health", "api")
        return port

    async def start_baseline_api(self) -> int:
        """The bare Starlette baseline; returns its port."""
        port = free_port()
        self.spawn("baseline-api", "bench.baseline_starlette", "--port", str(port),
                   "--redis", self.url)  # fmt: skip
        await self._wait_port(port, "baseline-api")
        return port

    async def start_workers(self, count: int) -> list[str]:
        """`count` of our worker processes, each polling the queue when this returns."""
        names = []
        for n in range(count):
            name = f"worker-{n + 1}"
            await self._start_worker(name, f"{self.keys.queue}:health-check",
                                     ("agentfield_arq", "worker"), self.ours_env())  # fmt: skip
            names.append(name)
        return names

    async def start_baseline_workers(self, count: int, agent_url: str) -> list[str]:
        """`count` bare arq baseline worker processes."""
        names = []
        for n in range(count):
            name = f"baseline-worker-{n + 1}"
            args = ("bench.baseline_arq", "--redis", self.url, "--agent",
                    f"{agent_url}/reasoners/{REASONER}", "--queue", BASELINE_QUEUE)  # fmt: skip
            await self._start_worker(name, f"{BASELINE_QUEUE}:health-check", args, {})
            names.append(name)
        return names

    async def _start_worker(
        self, name: str, health_key: str, args: tuple[str, ...], env: dict[str, str]
    ) -> None:
        # arq writes its health-check key after its first poll; one worker at a time, so that
        # the key's appearance says that this very worker is up.
        self.redis.delete(health_key)
        self.spawn(name, *args, env=env)
        await self._wait(lambda: bool(self.redis.exists(health_key)), name)

    async def register_node(self, agent_url: str) -> None:
        """Register the inline agent as node `bench` with reasoner `echo` (as the API would)."""
        node = NodeRegistration(id=NODE, base_url=agent_url, reasoners=[TargetSpec(id=REASONER)])
        client = connect(self.url)
        try:
            await NodeRegistry(client, self.settings).register(msgspec.json.encode(node), node)
        finally:
            await client.aclose()

    def flush(self) -> None:
        """Empty our Redis between figures (it is ours: this run started it)."""
        self.redis.flushall()

    def rss_kb(self, name: str, field: str = "VmRSS") -> int:
        """Resident set size of one of our processes (`VmHWM`: its peak so far), from /proc
        (Linux)."""
        for line in Path(f"/proc/{self.pid(name)}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for {name}")

    # ------------------------------------------------------------------ waiting

    async def _wait(self, ready: Callable[[], bool], name: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs}")
            if ready():
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{name} did not become ready; see {self.logs}")

    async def _wait_port(self, port: int, name: str) -> None:
        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        await self._wait(listening, name)

    async def _wait_http(self, url: str, name: str) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        await self._wait(healthy, name)
