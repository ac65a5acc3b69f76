"""The arq worker is configured for bounded crash recovery, drains and msgpack payloads."""

from __future__ import annotations

import resource

import pytest
from arq.worker import Worker

from agentfield_arq.core.arq_bridge import arq_deserialize, arq_serialize
from agentfield_arq.core.settings import from_env
from agentfield_arq.workers.settings import worker_settings
from agentfield_arq.workers.worker import raise_open_files_limit


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


def test_a_worker_raises_its_open_files_limit_for_its_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"now": (1024, 1_048_576)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, pair: limits.update(now=pair))
    settings = from_env({}, redis_url="redis://127.0.0.1:1/0", worker_concurrency=2000)
    assert raise_open_files_limit(settings) == 2 * 2000 + 256
    assert limits["now"] == (4256, 1_048_576)
    limits["now"] = (1024, 2048)  # never past the hard limit
    assert raise_open_files_limit(settings) == 2048
    limits["now"] = (65_536, 1_048_576)  # never lowered
    assert raise_open_files_limit(settings) == 65_536
    assert limits["now"] == (65_536, 1_048_576)
