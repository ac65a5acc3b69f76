"""The demo receiver of the run command accepts verified webhooks and refuses the rest."""

from __future__ import annotations

import time

import httpx

from agentfield_arq.kernel.signing import signature_headers
from agentfield_arq.ops.receiver import create_receiver_app

BODY = b'{"event":"execution.completed","execution_id":"exec_1","status":"succeeded"}'


async def _post(body: bytes, headers: dict[str, str]) -> tuple[int, list[str]]:
    lines: list[str] = []
    app = create_receiver_app("s3cret", say=lines.append)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        answer = await client.post("/hook", content=body, headers=headers)
    return answer.status_code, lines


async def test_a_signed_webhook_is_accepted_and_printed() -> None:
    status, lines = await _post(BODY, signature_headers("s3cret", "msg_1", int(time.time()), BODY))
    assert status == 200
    assert "verified execution.completed exec_1" in lines[0]
    assert "webhook-id=msg_1" in lines[0]


async def test_a_tampered_webhook_is_refused() -> None:
    headers = signature_headers("s3cret", "msg_1", int(time.time()), BODY)
    status, lines = await _post(BODY.replace(b"succeeded", b"failed"), headers)
    assert status == 401
    assert "REFUSED" in lines[0]


async def test_a_body_over_the_cap_is_refused_unread() -> None:
    app = create_receiver_app("s3cret", say=print, max_body_bytes=len(BODY) - 1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        answer = await client.post("/hook", content=BODY)
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
