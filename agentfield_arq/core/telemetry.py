"""What agents report for information only (SDK telemetry, execution logs): recorded in capped
streams, each entry cut to a few KiB, and never used to change an execution."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from agentfield_arq.core.keys import TELEMETRY_BODY_BYTES, TELEMETRY_MAXLEN, Keys
from agentfield_arq.kernel.codec import now_ms
from agentfield_arq.kernel.models import ExecutionLogs, TelemetryEvent

logger = logging.getLogger(__name__)


class Telemetry:
    """Appends informational reports to their streams; memory is bounded by count and size."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def event(self, body: bytes, event: TelemetryEvent) -> None:
        """An SDK workflow event (start, completion...), which may carry a whole result."""
        await self._append(
            self.keys.telemetry,
            {"execution_id": event.execution_id or "", "status": event.status or ""},
            body,
        )
        logger.debug("telemetry execution_id=%s status=%s", event.execution_id, event.status)

    async def logs(self, execution_id: str, body: bytes, logs: ExecutionLogs) -> None:
        """A batch of an agent's log records about one execution."""
        await self._append(
            self.keys.execution_logs,
            {"execution_id": execution_id[:128], "entries": str(len(logs.entries))},
            body,
        )
        logger.debug("execution logs execution_id=%s entries=%d", execution_id, len(logs.entries))

    async def _append(self, stream: str, fields: dict[str, str], body: bytes) -> None:
        entry: dict[str, str | int | bytes] = {**fields, "at_ms": now_ms()}
        entry["body"] = body[:TELEMETRY_BODY_BYTES]
        entry["truncated"] = int(len(body) > TELEMETRY_BODY_BYTES)
        await self.redis.xadd(stream, entry, maxlen=TELEMETRY_MAXLEN, approximate=True)  # type: ignore[arg-type]
