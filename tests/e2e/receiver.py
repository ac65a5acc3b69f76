"""A webhook receiver for end-to-end tests: a real HTTP server on a loopback address, in a thread
of the test process, whose answers each test scripts per path and whose requests it inspects."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_LIMIT_S = 60.0


@dataclass
class Plan:
    """How one path answers: `statuses` in turn, then `then`; `hang_first` holds the first
    request open without answering (until the test ends)."""

    statuses: list[int] = field(default_factory=list)
    then: int = 200
    retry_after: str | None = None
    hang_first: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the receiver read it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The body, decoded."""
        return json.loads(self.body)


class Receiver:
    """Serves on `host` (a free port) until `close`; thread-safe."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.plans: dict[str, Plan] = {}
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.release = threading.Event()
        self.server = ThreadingHTTPServer((host, 0), _Handler)
        self.server.daemon_threads = True
        self.server.receiver = self  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def plan(self, path: str, plan: Plan | None = None) -> str:
        """Script `path` (default: answer 200); returns its URL."""
        with self.lock:
            self.plans[path] = plan or Plan()
        return self.url + path

    def requests(self, path: str) -> list[Received]:
        """What `path` received so far, in order."""
        with self.lock:
            return self._requests(path)

    def wait(self, path: str, count: int = 1, timeout_s: float = 20.0) -> list[Received]:
        """What `path` received, once that is `count` requests (or fail at the timeout); woken
        by each request as it arrives."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self._requests(path)) >= count, timeout_s)
            got = self._requests(path)
        assert len(got) >= count, f"{path}: {len(got)} of {count} requests in {timeout_s}s"
        return got

    def _requests(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int | None, Plan]:
        """Record a request; returns the status to answer (None: hang) and the plan."""
        with self.arrived:
            seen = sum(1 for r in self.received if r.path == path)
            self.received.append(Received(path, headers, body, time.time()))
            plan = self.plans.get(path, Plan())
            self.arrived.notify_all()
        if plan.hang_first and seen == 0:
            return None, plan
        index = seen - 1 if plan.hang_first else seen
        return (plan.statuses[index] if index < len(plan.statuses) else plan.then), plan

    def close(self) -> None:
        """Release hanging requests and stop serving."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, plan = receiver.answer(self.path, headers, body)
        if status is None:
            receiver.release.wait(HANG_LIMIT_S)
            self.close_connection = True
            return
        self.send_response(status)
        if plan.retry_after is not None and status >= 300:
            self.send_header("Retry-After", plan.retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests look at `received` instead."""
