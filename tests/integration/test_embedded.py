"""The embedded Redis keeps its data across restarts (append-only file in its own folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from agentfield_arq.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration


def test_data_written_before_a_restart_is_there_after_it(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    first_url = server.start()
    try:
        with redis.Redis.from_url(first_url) as client:
            client.set("kept", "yes")
    finally:
        server.stop()
    second_url = server.start()
    try:
        with redis.Redis.from_url(second_url) as client:
            assert client.get("kept") == b"yes"
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server.stop()
    assert any((tmp_path / "redis").rglob("*.aof"))
