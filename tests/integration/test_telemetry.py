"""Informational reports are kept in bounded form: capped streams of capped entries."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from agentfield_arq.core.keys import TELEMETRY_BODY_BYTES, Keys
from agentfield_arq.core.telemetry import Telemetry
from agentfield_arq.kernel.models import ExecutionLogs, TelemetryEvent

pytestmark = pytest.mark.integration


async def test_a_large_telemetry_event_is_kept_cut_to_a_few_kib(redis_client: Redis) -> None:
    keys = Keys("t")
    body = b'{"execution_id": "exec_1", "status": "succeeded", "result": "' + b"x" * 100_000 + b'"}'
    await Telemetry(redis_client, keys).event(
        body, TelemetryEvent(execution_id="exec_1", status="succeeded")
    )
    [(_, entry)] = await redis_client.xrange(keys.telemetry)
    assert entry[b"execution_id"] == b"exec_1"
    assert entry[b"status"] == b"succeeded"
    assert entry[b"body"] == body[:TELEMETRY_BODY_BYTES]
    assert entry[b"truncated"] == b"1"


async def test_execution_logs_are_recorded_with_their_count(redis_client: Redis) -> None:
    keys = Keys("t")
    body = b'{"entries": [{"message": "a"}, {"message": "b"}]}'
    logs = ExecutionLogs(entries=[{"message": "a"}, {"message": "b"}])
    await Telemetry(redis_client, keys).logs("exec_1", body, logs)
    [(_, entry)] = await redis_client.xrange(keys.execution_logs)
    assert entry[b"entries"] == b"2"
    assert entry[b"truncated"] == b"0"
    assert entry[b"body"] == body
