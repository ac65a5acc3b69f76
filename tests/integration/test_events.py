"""Live events and the long-poll over the real app and the session's Redis (no worker, no
browser): SSE streams are read straight from the ASGI app, so that a test can stop reading,
disconnect, and reconnect with `Last-Event-ID`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from agentfield_arq.core.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]
BOUND_S = 5.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small buffers and quick heartbeats, so that both show in a test."""
    return msgspec.structs.replace(settings, sse_buffer=3, sse_heartbeat_s=0.2)


@dataclass
class Stream:
    """An SSE response read from the ASGI app: its frames as they arrive."""

    status: int = 0
    frames: list[dict[str, str]] = field(default_factory=list)
    comments: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _buffer: bytes = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            if block.startswith(b":"):
                self.comments += 1
            else:
                lines = block.decode().split("\n")
                self.frames.append(dict(line.split(": ", 1) for line in lines))
        self.arrived.set()

    async def until(self, frames: int = 0, comments: int = 0, last: str | None = None) -> None:
        """Wait (bounded) until this many frames and comment lines have arrived, and the last
        frame is named `last` if given."""
        async with asyncio.timeout(BOUND_S):
            while (
                len(self.frames) < frames
                or self.comments < comments
                or (last is not None and (not self.frames or self.frames[-1]["event"] != last))
            ):
                self.arrived.clear()
                await self.arrived.wait()

    def names(self) -> list[str]:
        return [f["event"] for f in self.frames]


@contextlib.asynccontextmanager
async def opened(
    api: httpx.AsyncClient,
    path: str,
    headers: dict[str, str] | None = None,
    gate: asyncio.Event | None = None,
) -> AsyncIterator[Stream]:
    """A GET of `path` on the client's app, read as it streams; leaving the block disconnects.
    With `gate`, every send after the first waits for it: a client that does not read."""
    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    target, _, query = path.partition("?")
    sent = {**api.headers, **(headers or {})}
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
        "server": ("api.test", 80),
        "client": ("127.0.0.1", 1234),
    }
    stream = Stream()
    gone = asyncio.Event()
    requested = False
    bodies = 0

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            stream.status = message["status"]
            stream.arrived.set()
        elif message["type"] == "http.response.body":
            nonlocal bodies
            bodies += 1
            if gate is not None and bodies > 1:
                await gate.wait()
            stream.feed(message.get("body", b""))

    app: Any = transport.app
    task: asyncio.Task[None] = asyncio.create_task(app(scope, receive, send))
    try:
        yield stream
    finally:
        gone.set()
        async with asyncio.timeout(BOUND_S):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _submit(api: httpx.AsyncClient, run_id: str) -> str:
    answer = await api.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}}, headers={"X-Run-ID": run_id}
    )
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


async def _cancel(api: httpx.AsyncClient, execution_id: str) -> None:
    assert (await api.post(f"/api/v1/executions/{execution_id}/cancel")).status_code == 200


def _seen(frames: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(msgspec.json.decode(f["data"])["execution_id"], f["event"]) for f in frames]


async def test_a_client_that_reconnects_with_last_event_id_misses_nothing(
    api: httpx.AsyncClient,
) -> None:
    async with opened(api, "/api/v1/events?run_id=sse") as first:
        await first.until(comments=1)  # subscribed
        a = await _submit(api, "sse")
        await first.until(frames=1)
    resume = first.frames[0]["id"]
    await _cancel(api, a)  # while no client listens
    b = await _submit(api, "sse")
    await _submit(api, "another-run")
    async with opened(api, "/api/v1/events?run_id=sse", {"Last-Event-ID": resume}) as second:
        await second.until(frames=2)
        await _cancel(api, b)
        await second.until(frames=3)
    assert _seen(first.frames) == [(a, "queued")]
    assert _seen(second.frames) == [(a, "cancelled"), (b, "queued"), (b, "cancelled")]
    ids = [f["id"] for f in first.frames + second.frames]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert len(set(ids)) == 4


async def test_a_quiet_stream_sends_heartbeat_comments(
    api: httpx.AsyncClient,
) -> None:
    async with opened(api, "/api/v1/events?status=timeout") as stream:
        await stream.until(comments=3)
        await _submit(api, "quiet")
    assert stream.status == 200
    assert stream.frames == []


async def test_a_client_that_does_not_read_is_cut_off_with_a_last_event_saying_why(
    api: httpx.AsyncClient,
) -> None:
    gate = asyncio.Event()
    async with opened(api, "/api/v1/events?run_id=slow", gate=gate) as stream:
        await stream.until(comments=1)
        made = [await _submit(api, "slow") for _ in range(6)]
        # The server answers others meanwhile: it never waits for this client.
        assert (await api.get(f"/api/v1/executions/{made[-1]}")).status_code == 200
        gate.set()
        await stream.until(last="cutoff")
    *events, cutoff = stream.frames
    assert cutoff["event"] == "cutoff"
    assert msgspec.json.decode(cutoff["data"])["code"] == "slow_consumer"
    resume = msgspec.json.decode(cutoff["data"])["last_event_id"]
    assert resume == events[-1]["id"]
    async with opened(api, "/api/v1/events?run_id=slow", {"Last-Event-ID": resume}) as again:
        await again.until(frames=len(made) - len(events))
    assert [e for e, _ in _seen(events + again.frames)] == made


async def test_one_executions_stream_starts_with_its_state_and_ends_after_its_end(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api, "one")
    async with opened(api, f"/api/v1/executions/{execution_id}/events") as stream:
        await stream.until(frames=1)
        await _cancel(api, execution_id)
        await stream.until(frames=2)
    assert stream.names() == ["state", "cancelled"]
    assert "id" not in stream.frames[0]
    finished = await api.get(f"/api/v1/executions/{execution_id}/events")
    assert finished.headers["content-type"].startswith("text/event-stream")
    assert finished.text.count("event: ") == 1
    assert finished.text.startswith(": heartbeat\n\n")
    assert "event: state" in finished.text


async def test_one_executions_stream_resumed_replays_what_followed(
    api: httpx.AsyncClient,
) -> None:
    async with opened(api, "/api/v1/events?run_id=replay") as live:
        await live.until(comments=1)
        execution_id = await _submit(api, "replay")
        await live.until(frames=1)
    await _cancel(api, execution_id)
    answer = await api.get(
        f"/api/v1/executions/{execution_id}/events",
        headers={"Last-Event-ID": live.frames[0]["id"]},
    )
    assert answer.status_code == 200
    assert "event: cancelled" in answer.text
    assert "event: queued" not in answer.text


async def test_events_of_an_unknown_execution_are_404_and_a_bad_last_event_id_is_400(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.get("/api/v1/executions/exec_nobody/events")).status_code == 404
    answer = await api.get("/api/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert answer.status_code == 400
    assert "Last-Event-ID" in answer.json()["error"]


async def test_a_long_poll_answers_as_soon_as_the_execution_ends(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api, "poll")
    polled = asyncio.create_task(api.get(f"/api/v1/executions/{execution_id}?wait=30"))
    await _cancel(api, execution_id)
    async with asyncio.timeout(BOUND_S):
        answer = await polled
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"


async def test_a_long_poll_answers_the_current_state_when_its_wait_runs_out(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api, "poll")
    answer = await api.get(f"/api/v1/executions/{execution_id}?wait=1")
    assert answer.json()["status"] == "queued"
    for bad in ("61", "-1", "soon"):
        refused = await api.get(f"/api/v1/executions/{execution_id}?wait={bad}")
        assert refused.status_code == 400
        assert refused.json()["error"].startswith("query parameter wait:")


async def test_an_agents_progress_shows_in_the_read_and_as_an_event(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api, "progress")
    report = {"status": "running", "progress": 40, "message": "reading filings"}
    async with opened(api, "/api/v1/events?run_id=progress") as stream:
        await stream.until(comments=1)
        answer = await api.post(f"/api/v1/executions/{execution_id}/status", json=report)
        assert answer.status_code == 200, answer.text
        await stream.until(frames=2)
    doc = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert (doc["status"], doc["progress"], doc["progress_message"]) == (
        "running",
        40,
        "reading filings",
    )
    assert stream.names() == ["running", "progress"]
    data = msgspec.json.decode(stream.frames[1]["data"])
    assert (data["progress"], data["message"]) == (40, "reading filings")


async def test_a_progress_report_too_large_is_400_naming_progress(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _submit(api, "progress")
    report = {"status": "running", "progress": "x" * 5000}
    answer = await api.post(f"/api/v1/executions/{execution_id}/status", json=report)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("progress:")
