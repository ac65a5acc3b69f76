"""Request bodies are read up to a cap and no further."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.types import Message

from agentfield_arq.kernel.body import read_body
from agentfield_arq.kernel.errors import PayloadTooLarge


class Peer:
    """An ASGI `receive` that sends `chunks` (then nothing more) and counts what was taken."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.taken = 0

    async def receive(self) -> Message:
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.taken += 1
        return {"type": "http.request", "body": chunk, "more_body": True}


def request(peer: Peer, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw}
    return Request(scope, peer.receive)


def endless() -> Iterator[bytes]:
    while True:
        yield b"x" * 1000


async def test_a_body_within_the_cap_is_read_whole() -> None:
    peer = Peer(iter([b"ab", b"cd"]))
    assert await read_body(request(peer), 4) == b"abcd"


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    peer = Peer(endless())
    with pytest.raises(PayloadTooLarge, match="larger than 100 bytes"):
        await read_body(request(peer, {"Content-Length": "101"}), 100)
    assert peer.taken == 0


async def test_an_undeclared_body_stops_being_read_once_past_the_cap() -> None:
    peer = Peer(endless())
    with pytest.raises(PayloadTooLarge):
        await read_body(request(peer), 2500)
    assert peer.taken == 3
