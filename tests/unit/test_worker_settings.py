"""The arq worker is configured for bounded crash recovery, drains and msgpack payloads."""

from __future__ import annotations

from arq.worker import Worker

from agentfield_arq.core.arq_bridge import arq_deserialize, arq_serialize
from agentfield_arq.core.settings import from_env
from agentfield_arq.workers.settings import worker_settings


async def test_no_job_timeout_exceeds_the_run_job_timeout() -> None:
    # Async, so that arq's Worker takes the running loop: built outside one, after another
    # test's asyncio.run has cleared the current loop, it makes a loop that nobody closes.
    settings = from_env({}, redis_url="redis://127.0.0.1:1/0")
    worker = Worker(**worker_settings(settings))
    assert worker.in_progress_timeout_s == settings.job_timeout_s + 10


def test_a_sigterm_lets_jobs_finish_for_the_drain_period() -> None:
    settings = from_env({}, redis_url="redis://127.0.0.1:1/0", worker_drain_s=12)
    assert worker_settings(settings)["job_completion_wait"] == 12


def test_jobs_are_msgpack_not_pickle() -> None:
    kwargs = worker_settings(from_env({}, redis_url="redis://127.0.0.1:1/0"))
    assert kwargs["job_serializer"] is arq_serialize
    assert kwargs["job_deserializer"] is arq_deserialize
    assert arq_serialize({"a": ("x",)})[:1] != b"\x80"  # pickle's protocol marker
