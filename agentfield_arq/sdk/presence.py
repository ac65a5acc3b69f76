"""An agent node's presence on the control plane: register (retrying until the control plane
answers), heartbeat, register again when the control plane has forgotten the node, say goodbye.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.models import HeartbeatRequest, ShutdownRequest

logger = logging.getLogger(__name__)

REGISTER_BASE_S = 0.2
REGISTER_CAP_S = 5.0
GOODBYE_TIMEOUT_S = 2.0
_JSON = {"Content-Type": "application/json"}


class Presence:
    """Keeps one node registered for as long as `run` runs."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        node_id: str,
        record: Callable[[], dict[str, Any]],
        interval_s: float,
    ) -> None:
        self.http = http
        self.node_id = node_id
        self.record = record
        self.interval_s = interval_s
        self.registered = False

    async def run(self) -> None:
        """Register, then heartbeat; forever (cancel the task to stop)."""
        while True:
            await self._register()
            await self._beat_until_forgotten()

    async def _register(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            body = msgspec.json.encode(self.record())
            try:
                response = await self.http.post(
                    "/api/v1/nodes/register", content=body, headers=_JSON
                )
            except httpx.TransportError as exc:
                problem = f"control plane unreachable ({type(exc).__name__})"
            else:
                if response.status_code in (200, 201):
                    self.registered = True
                    logger.info(
                        "node %s registered with %s as %s",
                        self.node_id, self.http.base_url, self.record()["base_url"],
                    )  # fmt: skip
                    return
                problem = f"registration answered {response.status_code}: {response.text[:300]}"
            # Say it on the first failure and now and then, not on every retry.
            level = logging.WARNING if attempt == 1 or attempt % 20 == 0 else logging.DEBUG
            logger.log(level, "node %s not registered yet: %s; retrying", self.node_id, problem)
            await asyncio.sleep(backoff_s(attempt, REGISTER_BASE_S, REGISTER_CAP_S))

    async def _beat_until_forgotten(self) -> None:
        url = f"/api/v1/nodes/{self.node_id}/heartbeat"
        while True:
            await asyncio.sleep(self.interval_s)
            body = msgspec.json.encode(
                HeartbeatRequest(status="ready", timestamp=rfc3339(now_ms()))
            )
            try:
                response = await self.http.post(url, content=body, headers=_JSON)
            except httpx.TransportError as exc:
                logger.debug("heartbeat of %s failed: %s", self.node_id, exc)
                continue
            if response.status_code == 404:
                logger.warning("control plane forgot node %s; registering again", self.node_id)
                self.registered = False
                return

    async def goodbye(self, reason: str = "shutdown") -> None:
        """Tell the control plane the node is going away (best effort, never raises)."""
        if not self.registered:
            return
        try:
            await self.http.post(
                f"/api/v1/nodes/{self.node_id}/shutdown",
                content=msgspec.json.encode(ShutdownRequest(reason=reason)),
                headers=_JSON,
                timeout=GOODBYE_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            logger.debug("goodbye of %s not delivered: %s", self.node_id, exc)
        else:
            logger.info("node %s said goodbye", self.node_id)
        self.registered = False
