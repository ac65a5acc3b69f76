"""One delivery attempt without Redis: the body, the headers, the retry schedule, and how each
answer of a receiver (behind httpx.MockTransport) is classified."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from arq.worker import Worker

from agentfield_arq.core.arq_bridge import DELIVER_WEBHOOK
from agentfield_arq.core.delivery import (
    Answer,
    Deliverer,
    build_body,
    parse_retry_after,
    request_headers,
    retry_delay_s,
)
from agentfield_arq.core.outbox import Attempt
from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.errors import ConfigurationError
from agentfield_arq.kernel.signing import verify
from agentfield_arq.workers.settings import worker_settings

SCHEDULE = (5.0, 30.0, 120.0)
DOC = (
    b'{"execution_id":"exec_1","run_id":"run_1","status":"succeeded","target":"n.r",'
    b'"type":"reasoner","created_at":"2026-01-01T00:00:00.000Z","completed_at":'
    b'"2026-01-01T00:00:01.500Z","duration_ms":1500,"webhook_registered":true,'
    b'"result":[1,{"big":12345678901234567890}]}'
)
FAILED_DOC = (
    b'{"execution_id":"exec_2","run_id":"run_2","status":"timeout","target":"n.r",'
    b'"type":"skill","completed_at":"2026-01-01T00:00:02.000Z","error":"deadline exceeded"}'
)


def _attempt(doc: bytes = DOC, **kw: object) -> Attempt:
    fields: dict[str, object] = {
        "execution_id": "exec_1",
        "attempt": 1,
        "round_attempt": 1,
        "webhook_id": "msg_1",
        "event_type": "execution.completed",
        "doc": doc,
        "url": "https://hooks.example.com/in",
        "secret": "s3cret",
        "headers": {},
    }
    fields.update(kw)
    return Attempt(**fields)  # type: ignore[arg-type]


def test_a_succeeded_body_has_the_contract_fields_and_the_result_byte_for_byte() -> None:
    body = build_body(_attempt())
    assert b'"result":[1,{"big":12345678901234567890}]' in body
    assert json.loads(body) == {
        "event": "execution.completed",
        "execution_id": "exec_1",
        "workflow_id": "run_1",
        "run_id": "run_1",
        "status": "succeeded",
        "target": "n.r",
        "type": "reasoner",
        "duration_ms": 1500,
        "result": [1, {"big": 12345678901234567890}],
        "timestamp": "2026-01-01T00:00:01.500Z",
    }


def test_a_failed_body_has_the_error_message_and_no_result() -> None:
    body = json.loads(build_body(_attempt(FAILED_DOC, event_type="execution.failed")))
    assert body["event"] == "execution.failed"
    assert body["status"] == "timeout"
    assert body["error_message"] == "deadline exceeded"
    assert "result" not in body
    assert "duration_ms" not in body


def test_the_body_is_the_same_bytes_on_every_attempt() -> None:
    assert build_body(_attempt()) == build_body(_attempt(attempt=5, round_attempt=5))


def test_user_headers_are_sent_but_cannot_replace_the_sender_s_own() -> None:
    attempt = _attempt(
        headers={
            "Authorization": "Bearer t",
            "webhook-id": "forged",
            "X-AgentField-Signature": "x",
            "Content-Type": "text/plain",
        }
    )
    body = build_body(attempt)
    headers = request_headers(attempt, body, 1_800_000_000)
    assert headers["Authorization"] == "Bearer t"
    assert headers["webhook-id"] == "msg_1"
    assert headers["Content-Type"] == "application/json"
    assert "forged" not in headers.values()
    assert verify(body, headers, "s3cret", scheme="agentfield")


def test_the_schedule_is_followed_with_jitter_and_then_runs_out() -> None:
    rng = random.Random(7)
    for attempt, base in enumerate(SCHEDULE, 1):
        for _ in range(50):
            delay = retry_delay_s(attempt, SCHEDULE, 0.2, rng=rng)
            assert delay is not None
            assert base * 0.8 <= delay <= base * 1.2
    assert retry_delay_s(4, SCHEDULE, 0.2) is None


def test_retry_after_lengthens_a_wait_up_to_its_cap_but_never_shortens_it() -> None:
    assert retry_delay_s(1, SCHEDULE, 0.0, retry_after_s=60) == 60
    assert retry_delay_s(1, SCHEDULE, 0.0, retry_after_s=1) == 5
    assert retry_delay_s(1, SCHEDULE, 0.0, retry_after_s=99_999, retry_after_max_s=600) == 600


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120") == 120
    when = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    assert parse_retry_after(when, now=now) == pytest.approx(90)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None


def _deliverer(handler: httpx.MockTransport, **settings: object) -> Deliverer:
    config = from_env({}, webhook_timeout_s=2, webhook_max_response_bytes=64, **settings)
    return Deliverer(None, httpx.AsyncClient(transport=handler), config)  # type: ignore[arg-type]


async def test_any_2xx_is_a_delivery_of_the_signed_body() -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    answer = await _deliverer(httpx.MockTransport(receiver)).send(_attempt())
    assert answer.delivered
    assert verify(seen[0].content, seen[0].headers, "s3cret", scheme="standard")
    assert verify(seen[0].content, seen[0].headers, "s3cret", scheme="agentfield")


async def test_410_is_final_and_other_statuses_are_retried_with_their_retry_after() -> None:
    def gone(request: httpx.Request) -> httpx.Response:
        return httpx.Response(410, text="unsubscribed")

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")

    answer = await _deliverer(httpx.MockTransport(gone)).send(_attempt())
    assert (answer.final, answer.http_status) == (True, 410)
    assert "unsubscribed" in (answer.error or "")
    answer = await _deliverer(httpx.MockTransport(busy)).send(_attempt())
    assert answer == Answer(http_status=429, error="receiver answered 429: slow down",
                            retry_after_s=7.0)  # fmt: skip


async def test_a_receiver_s_answer_is_read_only_up_to_the_cap() -> None:
    def chatty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=b"x" * 100_000)

    answer = await _deliverer(httpx.MockTransport(chatty)).send(_attempt())
    assert answer.error is not None
    assert len(answer.error) < 100


async def test_a_transport_error_is_an_answer_without_a_status() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    answer = await _deliverer(httpx.MockTransport(down)).send(_attempt())
    assert answer.http_status is None
    assert answer.error == "ConnectError: connection refused"
    assert not answer.final


def test_a_malformed_schedule_fails_at_start_up_with_its_name() -> None:
    for schedule in ("5,soon", "5,-1", "5,inf", "90000"):
        with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_WEBHOOK_RETRY_SCHEDULE_S"):
            from_env({"AGENTFIELD_ARQ_WEBHOOK_RETRY_SCHEDULE_S": schedule})


def test_the_default_schedule_is_seven_retries_from_5_s_to_3_h() -> None:
    settings = from_env({})
    assert settings.webhook_retry_delays_s == (5, 30, 120, 600, 1800, 3600, 10800)
    assert settings.webhook_max_attempts == 8
    assert settings.webhook_block_private is True


def test_a_long_webhook_timeout_lengthens_the_crash_recovery_bound() -> None:
    settings = from_env({}, agent_timeout_s=2, webhook_timeout_s=20)
    assert settings.recovery_bound_s >= settings.webhook_job_timeout_s + 10


async def test_the_worker_runs_deliveries_with_a_bounded_timeout_and_enough_tries() -> None:
    # Async, so that arq's Worker takes the running loop (see test_worker_settings.py).
    settings = from_env({}, redis_url="redis://127.0.0.1:1/0")
    worker = Worker(**worker_settings(settings))
    deliver = worker.functions[DELIVER_WEBHOOK]
    assert deliver.timeout_s == settings.webhook_job_timeout_s
    assert deliver.max_tries is not None
    assert deliver.max_tries > settings.webhook_max_attempts
