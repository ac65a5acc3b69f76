"""One poll loop for every outstanding wait: each round asks batch-status about all pending ids.

A hundred concurrent `app.call`s cost one request per round, not a hundred poll loops. The
interval follows the youngest pending execution (a quarter of its age, within bounds), so fresh
work is seen within ~50 ms and long work is polled about once a second; a new waiter wakes the
loop early, and a burst of them still yields at most one request per minimum interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from agentfield_arq.kernel import errors

logger = logging.getLogger(__name__)

AGE_FRACTION = 0.25
MAX_ERROR_DELAY_S = 5.0


class Settled(Protocol):
    """What the waiter needs to know about an execution it fetched."""

    @property
    def settled(self) -> bool:
        """True once the execution will not change any more (terminal, or unknown)."""
        ...


T = TypeVar("T", bound=Settled)


class Waiter(Generic[T]):
    """Resolves waits on execution ids by polling `fetch(ids)` in one shared loop."""

    def __init__(
        self,
        fetch: Callable[[list[str]], Awaitable[dict[str, T]]],
        *,
        min_interval_s: float = 0.05,
        max_interval_s: float = 1.0,
    ) -> None:
        self._fetch = fetch
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[str, list[asyncio.Future[T]]] = {}
        self._since: dict[str, float] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    @property
    def pending(self) -> int:
        """How many distinct execution ids are being waited for."""
        return len(self._waiting)

    async def wait(self, ids: Sequence[str], timeout_s: float | None = None) -> dict[str, T]:
        """Each id's settled state; raises WaitTimeout (the executions carry on) at the limit."""
        loop = self._bind()
        futures: dict[str, asyncio.Future[T]] = {i: loop.create_future() for i in ids}
        for execution_id, future in futures.items():
            self._waiting.setdefault(execution_id, []).append(future)
            self._since.setdefault(execution_id, loop.time())
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="agentfield-arq-waiter")
        try:
            _, not_done = await asyncio.wait(
                futures.values(), timeout=timeout_s, return_when=asyncio.FIRST_EXCEPTION
            )
            for future in futures.values():
                if future.done() and (exc := future.exception()) is not None:
                    raise exc
            if not_done:
                late = [i for i, f in futures.items() if f in not_done]
                raise errors.WaitTimeout(
                    f"{len(late)} execution(s) not finished after {timeout_s}s", late
                )
            return {i: f.result() for i, f in futures.items()}
        finally:
            for execution_id, future in futures.items():
                self._forget(execution_id, future)

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Futures and events belong to one loop; a client reused under a new loop starts over."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._waiting, self._since = loop, {}, {}
            self._arrived, self._task = asyncio.Event(), None
        return loop

    def _forget(self, execution_id: str, future: asyncio.Future[T]) -> None:
        future.cancel()  # no-op when done; frees a waiter that timed out or was cancelled
        futures = self._waiting.get(execution_id, [])
        if future in futures:
            futures.remove(future)
        if not futures:
            self._waiting.pop(execution_id, None)
            self._since.pop(execution_id, None)

    async def _run(self) -> None:
        while self._waiting:
            await self._pause()
            ids = list(self._waiting)
            if not ids:
                return
            try:
                found = await self._fetch(ids)
            except Exception as exc:
                if _transient(exc):
                    self._failures += 1
                    if self._failures == 1 or self._failures % 10 == 0:
                        logger.warning(
                            "polling %d execution(s) failed, retrying: %s", len(ids), exc
                        )
                else:  # a refusal that asking again will not change: fail the waits, not hang
                    logger.error("polling %d execution(s) failed: %s", len(ids), exc)
                    self._resolve_all(exc)
                continue
            self._failures = 0
            for execution_id, state in found.items():
                if state.settled:
                    for future in self._waiting.pop(execution_id, []):
                        if not future.done():
                            future.set_result(state)
                    self._since.pop(execution_id, None)

    def _resolve_all(self, exc: BaseException) -> None:
        waiting, self._waiting, self._since = self._waiting, {}, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)

    def _delay(self, now: float) -> float:
        if self._failures:
            return min(MAX_ERROR_DELAY_S, self.min_interval_s * 2.0**self._failures)
        youngest = max(self._since.values(), default=now)
        return min(self.max_interval_s, max(self.min_interval_s, (now - youngest) * AGE_FRACTION))

    async def _pause(self) -> None:
        """Sleep until the next round; a newcomer brings it forward to one minimum interval."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._delay(loop.time())
        while (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
            if self._arrived.is_set():
                deadline = min(deadline, loop.time() + self.min_interval_s)


def _transient(exc: Exception) -> bool:
    """No answer, or a 5xx or 429: the control plane may answer better on the next round."""
    if isinstance(exc, errors.ControlPlaneUnreachable):
        return True
    if isinstance(exc, errors.ApiError):
        if exc.status_code is None:  # raised in this process, not answered over HTTP
            return isinstance(exc, errors.Unavailable)
        return exc.status_code >= 500 or exc.status_code == 429
    return False
