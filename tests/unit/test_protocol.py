"""The API's HTTP protocol: what each open connection costs."""

from __future__ import annotations

import sys
from typing import Any
from unittest import mock

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from agentfield_arq.api.protocol import protocol_class
from agentfield_arq.core.settings import Settings


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
