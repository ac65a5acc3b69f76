"""Waiting in end-to-end tests, on the events the system and its processes offer, each wait
bounded by a deadline that fails the test:

- an execution's end: its terminal entry on the lifecycle stream (`Keys.events`), read with
  XREAD BLOCK, as the API's own sync route waits;
- any other state the system keeps in Redis (webhook deliveries, node records, phases): a
  condition re-checked on every write under the system's key prefix, which Redis announces
  by keyspace notification once `notify_keyspace_events` has turned them on;
- a line a process prints: its output, read as it comes;
- a process that starts to answer HTTP: polled, the one case that announces nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import redis
from redis.client import PubSub

from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.status import TERMINAL_STATUSES

T = TypeVar("T")

POLL_S = 0.05
# A condition can also change without a write (a process exits, a record ages): re-checked
# at least this often even when nothing is written.
RECHECK_S = 1.0
READ_COUNT = 1000
SUBSCRIBE_TIMEOUT_S = 5.0


def poll(condition: Callable[[], T], what: str, timeout_s: float) -> T:
    """`condition()` once it is truthy, tried every POLL_S: only for a process starting to
    answer on its port, which nothing announces."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(POLL_S)
    return value


def notify_keyspace_events(redis_url: str, classes: str) -> None:
    """Set which writes the server announces ("KA": every write's key; "": none). Ours to set:
    the test session started that server."""
    with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
        client.config_set("notify-keyspace-events", classes)


def on_writes(
    redis_url: str, prefix: str, condition: Callable[[], T], what: str, timeout_s: float
) -> T:
    """`condition()` once it is truthy, checked now and again after each write to a key under
    `prefix` (and every RECHECK_S); the subscription is confirmed before the first check, so
    no write can fall between the two."""
    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(redis_url)
    subscriber: Any = PubSub(client.connection_pool)  # redis-py leaves its methods untyped
    with contextlib.closing(client), contextlib.closing(subscriber) as writes:
        writes.psubscribe(f"__keyspace@*__:{Keys(prefix).all_keys}")
        confirmed = writes.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
        assert confirmed is not None, "Redis did not confirm the keyspace subscription"
        while not (value := condition()):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out after {timeout_s}s waiting for {what}"
            if writes.get_message(timeout=min(remaining, RECHECK_S)) is not None:
                # One check answers for every write already announced.
                while writes.get_message() is not None and time.monotonic() < deadline:
                    pass
    return value


def terminal(
    redis_url: str,
    prefix: str,
    execution_id: str,
    read: Callable[[], dict[str, Any]],
    timeout_s: float,
) -> dict[str, Any]:
    """`read()` (the execution's status document) once it is terminal. The stream's cursor is
    taken before the first read, so a terminal entry appended after it is seen, and one
    appended before it shows in the read."""
    events = Keys(prefix).events
    deadline = time.monotonic() + timeout_s
    with contextlib.closing(redis.Redis.from_url(redis_url, decode_responses=True)) as client:
        newest: Any = client.xrevrange(events, count=1)
        cursor: str = newest[0][0] if newest else "0-0"
        while (doc := read()).get("status") not in TERMINAL_STATUSES:
            block_ms = int((deadline - time.monotonic()) * 1000)
            assert block_ms > 0, f"{execution_id} not terminal after {timeout_s}s: {doc}"
            cursor = _after_terminal_entry(client, events, cursor, execution_id, block_ms)
    return doc


def _after_terminal_entry(
    client: redis.Redis, events: str, cursor: str, execution_id: str, block_ms: int
) -> str:
    """The cursor past the next entries: up to `execution_id`'s terminal entry if one comes
    within `block_ms`, else up to the last one read."""
    replies: Any = client.xread({events: cursor}, count=READ_COUNT, block=block_ms)
    for _stream, entries in replies or []:
        for entry_id, fields in entries:
            cursor = entry_id
            if fields["execution_id"] == execution_id and fields["status"] in TERMINAL_STATUSES:
                return cursor
    return cursor


class Output:
    """A process's output (stdout and stderr on one pipe), copied to `log` as it comes; a
    test waits for the line it expects instead of re-reading a file."""

    def __init__(self, stream: IO[bytes], log: Path) -> None:
        self._chunks: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream, log), daemon=True)
        self._reader.start()

    @property
    def text(self) -> str:
        """Everything read so far."""
        with self._changed:
            return "".join(self._chunks)

    def wait_for(self, text: str, timeout_s: float) -> None:
        """Return once `text` has been printed; fail if the output ends or time runs out
        first."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended or text in "".join(self._chunks), timeout_s)
        assert text in self.text, f"{text!r} not printed within {timeout_s}s:\n{self.text}"

    def ended(self, timeout_s: float) -> str:
        """Everything, once every process holding the pipe has closed it (or at the timeout)."""
        self._reader.join(timeout_s)
        return self.text

    def _read(self, stream: IO[bytes], log: Path) -> None:
        with stream, log.open("wb") as copy:
            for line in stream:
                copy.write(line)
                copy.flush()
                with self._changed:
                    self._chunks.append(line.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()
