"""The API's HTTP protocol (api/protocol.py) driven over a transport that records its writes:
a response goes out in one write, and what a streamed one writes goes out in order; and what
each open connection costs."""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from unittest import mock

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from agentfield_arq.api.protocol import protocol_class
from agentfield_arq.core.settings import Settings

REQUEST = b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.wrote = asyncio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.wrote.set()

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _served(app: Any, until: bytes) -> list[bytes]:
    kind = protocol_class(Settings())
    config = uvicorn.Config(app, http=kind, log_level="warning")
    config.load()
    protocol = kind(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    async with asyncio.timeout(5):
        while not b"".join(transport.writes).endswith(until):
            transport.wrote.clear()
            await transport.wrote.wait()
    protocol.connection_lost(None)
    return transport.writes


async def test_a_response_goes_out_in_one_write_with_its_headers() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok"})

    (written,) = await _served(app, b"\r\n\r\nok")
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_streamed_body_goes_out_in_order_as_it_comes() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)  # the next part comes in a later loop turn
        await send({"type": "http.response.body", "body": b""})

    writes = await _served(app, b"0\r\n\r\n")
    assert len(writes) == 3  # head with the first part, the second, the end
    assert b"".join(writes).endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is sent")


def _connected(kind: type[HttpToolsProtocol]) -> HttpToolsProtocol:
    config = Config(app=_app, http="httptools", log_level="warning")
    config.load()
    protocol = kind(config, ServerState(), app_state={})
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("127.0.0.1", 1) if name in ("peername", "sockname") else default
    )
    transport.is_closing.return_value = False
    protocol.connection_made(transport)
    protocol.connection_lost(None)
    return protocol


async def test_an_open_connection_keeps_no_bigger_a_dict_than_uvicorns_own_protocol() -> None:
    ours, theirs = _connected(protocol_class(Settings())), _connected(HttpToolsProtocol)
    assert sys.getsizeof(vars(ours)) == sys.getsizeof(vars(theirs))
