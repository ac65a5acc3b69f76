"""The process's fan-out of lifecycle entries (core/broadcast.py), without Redis: bursts handed
to listeners as the follower would hand them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import cast

from redis.asyncio import Redis

from agentfield_arq.core.broadcast import Broadcast
from agentfield_arq.core.completions import Completions, Entry
from agentfield_arq.core.feed import EventFilter
from agentfield_arq.core.keys import Keys


def _entry(seq: int, execution_id: str, status: str, run_id: str = "r") -> Entry:
    fields = {
        b"execution_id": execution_id.encode(),
        b"status": status.encode(),
        b"target": b"n.t",
        b"run_id": run_id.encode(),
        b"owner": b"key_a",
    }
    return f"1700000000000-{seq}".encode(), fields


def _broadcast() -> Broadcast:
    return Broadcast(Completions(cast(Redis, None), Keys("t")))


async def test_listeners_of_one_filter_share_one_chunk_per_burst_and_others_get_theirs() -> None:
    b = _broadcast()
    async with (
        b.listen(EventFilter(), 10) as one,
        b.listen(EventFilter(), 10) as two,
        b.listen(EventFilter(run_id="r2"), 10) as other,
    ):
        b.hand([_entry(1, "e1", "queued"), _entry(2, "e2", "queued", run_id="r2")])
        (first,), (second,), (theirs,) = one.take(), two.take(), other.take()
    assert first is second
    assert first.data.count(b"\nevent: queued\n") == 2
    assert [f.execution_id for f in theirs.frames] == [b"e2"]


async def test_a_listener_of_one_execution_gets_its_events_up_to_its_end() -> None:
    b = _broadcast()
    async with b.listen(EventFilter(execution_id="e1"), 10) as listener:
        b.hand([_entry(1, "e1", "running"), _entry(2, "e2", "queued")])
        b.hand([_entry(3, "e1", "succeeded"), _entry(4, "e1", "progress")])
        early, end = listener.take()
    assert [f.id for f in early.frames] == [(1700000000000, 1)]
    assert [f.id for f in end.frames] == [(1700000000000, 3)]
    assert (early.ends, end.ends) == (False, True)


async def test_a_full_listener_is_marked_overflowed_and_the_others_still_get_every_burst() -> None:
    b = _broadcast()
    async with b.listen(EventFilter(), 2) as slow, b.listen(EventFilter(), 100) as fast:
        for seq in range(0, 6, 2):
            b.hand([_entry(seq, "e1", "queued"), _entry(seq + 1, "e2", "queued")])
        assert slow.overflowed
        assert len(slow.take()) == 1  # what fitted before it filled is still sent
        assert not fast.overflowed
        assert sum(len(c.frames) for c in fast.take()) == 6


async def test_a_chunk_cut_after_a_resumption_point_keeps_only_what_follows_it() -> None:
    b = _broadcast()
    async with b.listen(EventFilter(), 10) as listener:
        b.hand([_entry(seq, "e1", "queued") for seq in range(1, 4)])
        (chunk,) = listener.take()
    rest = chunk.after((1700000000000, 2))
    assert rest is not None
    assert [f.id[1] for f in rest.frames] == [3]
    assert rest.data == chunk.frames[2].data
    assert chunk.after((1700000000000, 3)) is None
    assert chunk.after((0, 0)) is chunk


async def test_a_fan_out_that_fails_cuts_its_listeners_off_so_that_they_resume() -> None:
    class Failing(Broadcast):
        def hand(self, burst: Iterable[Entry]) -> None:
            raise RuntimeError("a bug in the fan-out")

    completions = Completions(cast(Redis, None), Keys("t"))
    b = Failing(completions)
    async with b.listen(EventFilter(), 10) as listener:
        completions._take(*_entry(1, "e1", "queued"))  # as the follower hands an entry on
        async with asyncio.timeout(5):
            await listener.ready.wait()
        assert listener.overflowed
        assert listener.take() == []
