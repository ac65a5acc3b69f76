"""Request bodies are read up to a cap and no further, JSON depth is measured before any
decoder recurses, and the API's edge refuses or answers what no route should see."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from agentfield_arq.api.edge import Edge, host_name
from agentfield_arq.api.errors import error_response
from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.body import json_depth_over, read_body
from agentfield_arq.kernel.errors import PayloadTooLarge, RequestTimeout


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


@pytest.mark.parametrize(
    ("body", "limit", "over"),
    [
        (b'{"a": [[]]}', 3, False),
        (b'{"a": [[[]]]}', 3, True),
        (b'{"a": "[[[[[[", "b": []}', 2, False),  # brackets in strings do not count
        (b'{"a": "\\"[[[[[[", "b": []}', 2, False),  # nor after an escaped quote
        (b"[]" * 1000, 1, False),  # wide is not deep
        (b"[" * 100_000 + b"]" * 100_000, 64, True),
    ],
)
def test_json_depth_is_measured_without_decoding(body: bytes, limit: int, over: bool) -> None:
    assert json_depth_over(body, limit) is over


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8080", "localhost"),
        ("LocalHost", "localhost"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("example.com.", "example.com"),
        ("example.com.:80", "example.com"),
    ],
)
def test_the_host_header_is_compared_without_port_case_or_brackets(header: str, name: str) -> None:
    assert host_name(header) == name


async def test_the_edge_answers_an_unexpected_exception_itself_so_the_connection_survives() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    edge = Edge(broken, from_env({}))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"localhost")]}
    await edge(scope, receive, send)  # does not raise: uvicorn would close the connection
    assert sent[0]["status"] == 500
    assert (b"connection", b"close") not in sent[0]["headers"]
    assert b'"code":"internal_error"' in sent[1]["body"]


async def _reader(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body, then waits for the next message (a disconnect), then
    answers the body's size; a RequestTimeout is answered 408, as the app's handlers do."""
    size = 0
    try:
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await receive()
    except RequestTimeout as exc:
        await error_response(408, exc.code, exc.message)(scope, receive, send)
        return
    await Response(str(size).encode())(scope, receive, send)


BODY_HEADERS = [(b"host", b"localhost"), (b"content-type", b"application/json"),
                (b"content-length", b"2")]  # fmt: skip
BODY_TIMEOUT_S = 0.05


async def _through_edge(receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    edge = Edge(_reader, from_env({}, body_timeout_s=BODY_TIMEOUT_S))
    scope = {"type": "http", "method": "POST", "path": "/", "headers": BODY_HEADERS}
    async with asyncio.timeout(10):
        await edge(scope, receive, send)
    return sent


async def test_a_body_that_stops_arriving_is_408_and_the_connection_closes() -> None:
    messages = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    sent = await _through_edge(receive)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"body_timeout_s" in sent[1]["body"]


async def test_once_the_body_is_in_its_deadline_no_longer_applies() -> None:
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        # The peer goes away well after the body's deadline, which must not cut this wait.
        await asyncio.sleep(BODY_TIMEOUT_S * 4)
        return {"type": "http.disconnect"}

    sent = await _through_edge(receive)
    assert sent[0]["status"] == 200
    assert (b"connection", b"close") not in sent[0]["headers"]
    assert sent[1]["body"] == b"2"
