"""A small process supervisor for the run command: start children, restart the ones that die
(with a growing delay), and stop them all in order on Ctrl-C or SIGTERM: stage by stage, each
stage's children SIGTERMed together and given their own stop timeout, then a stage's hook.

Services the supervisor does not start or stop (the embedded Redis, which starts before every
child and stops after them) are watched too, and restarted the same way when they die."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
RESTART_MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 30.0


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel SIGTERM the child if the supervisor itself is killed."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    # Added to the supervisor's environment for this child only (its API key, say).
    env: dict[str, str] = field(default_factory=dict)
    # Children stop in ascending stages; each has this long after its SIGTERM.
    stage: int = 0
    stop_timeout_s: float = STOP_TIMEOUT_S
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    failures: int = field(default=0)

    def start(self, env: dict[str, str]) -> None:
        """Start (or restart) the process in a session of its own, so Ctrl-C reaches only us."""
        self.process = subprocess.Popen(
            self.argv, env={**env, **self.env}, start_new_session=True, preexec_fn=die_with_parent
        )
        self.started_at = time.monotonic()
        logger.info("started %s pid=%d", self.name, self.process.pid)


class Service(Protocol):
    """A process started and stopped by someone else, which the supervisor keeps alive."""

    def alive(self) -> bool:
        """Whether it still runs."""
        ...

    def restart(self) -> bool:
        """Start it again; False if it did not come up."""
        ...


@dataclass
class Watched:
    """A service and its restart schedule."""

    service: Service
    failures: int = 0
    next_start: float = 0.0


def restart_delay_s(failures: int) -> float:
    """The wait before restart number `failures` (1-based), doubling up to a cap."""
    delay: float = min(RESTART_MAX_DELAY_S, 0.5 * 2.0 ** (failures - 1))
    return delay


class Supervisor:
    """Keeps children (and watched services) alive until `stop` is called from a signal
    handler."""

    def __init__(
        self,
        children: list[Child],
        env: dict[str, str],
        services: Sequence[Service] = (),
        after_stage: dict[int, Callable[[], None]] | None = None,
    ) -> None:
        self.children = children
        self.env = env
        self.services = [Watched(service) for service in services]
        # Run once the stage's children are gone, before the next stage is stopped.
        self.after_stage = after_stage or {}
        self.stopping = threading.Event()
        self._stopped = False

    def start(self) -> None:
        """Start every child."""
        for child in self.children:
            child.start(self.env)

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM ask for an orderly stop."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())

    def supervise(self) -> None:
        """Restart dead children until asked to stop, then stop them all."""
        while not self.stopping.wait(0.5):
            for watched in self.services:
                self._revive(watched, time.monotonic())
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
        self.stop()

    def _revive(self, watched: Watched, now: float) -> None:
        """Restart a dead service at once the first time, then with a growing delay while it
        keeps failing to come up."""
        if watched.service.alive():
            watched.failures = 0
            return
        if now < watched.next_start:
            return
        if not watched.service.restart():
            watched.failures += 1
            watched.next_start = now + restart_delay_s(watched.failures)

    def _check(self, child: Child, now: float) -> None:
        process = child.process
        if process is not None and process.poll() is None:
            if now - child.started_at > HEALTHY_AFTER_S:
                child.failures = 0
            return
        if process is not None:
            child.failures += 1
            delay = restart_delay_s(child.failures)
            logger.error(
                "%s pid=%d exited with code %s; restarting in %.1fs",
                child.name, process.pid, process.returncode, delay,
            )  # fmt: skip
            child.process = None
            child.next_start = now + delay
            return
        if now >= child.next_start:
            child.restarts += 1
            child.start(self.env)

    def stop(self) -> None:
        """Stop the children stage by stage (SIGTERM, wait, SIGKILL the ones that linger),
        running each stage's hook after it; once only."""
        if self._stopped:
            return
        self._stopped = True
        for stage in sorted({c.stage for c in self.children} | set(self.after_stage)):
            self._stop_all([c for c in self.children if c.stage == stage])
            hook = self.after_stage.get(stage)
            if hook is not None:
                try:
                    hook()
                except Exception:  # a failed hook must not leave later stages running
                    logger.exception("the hook after stopping stage %d failed", stage)

    def _stop_all(self, children: list[Child]) -> None:
        running = [c for c in children if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + max((c.stop_timeout_s for c in running), default=0.0)
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s pid=%d did not stop; killing it", child.name, child.process.pid)
                child.process.kill()
                child.process.wait()
            logger.info("stopped %s", child.name)


def python_module(module: str, *args: str) -> list[str]:
    """argv for running `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env(overrides: dict[str, str]) -> dict[str, str]:
    """The environment children inherit, with our overrides."""
    return {**os.environ, **overrides}
