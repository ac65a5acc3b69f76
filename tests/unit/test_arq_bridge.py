"""The job records our Lua scripts queue are the ones arq writes and reads (arq's
tests/test_jobs.py is the model): decoded by arq's own functions, with our deserializer."""

from __future__ import annotations

from datetime import UTC, datetime

from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import deserialize_job, deserialize_job_raw, serialize_job, serialize_result
from arq.worker import JobExecutionFailed, Worker

from agentfield_arq.core.arq_bridge import (
    DELIVER_WEBHOOK,
    RUN_EXECUTION,
    arq_deserialize,
    arq_serialize,
    delivery_job_id,
    delivery_job_payload,
    run_job_payload,
    sweep_cron_name,
)
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import from_env
from agentfield_arq.workers.settings import worker_settings

EXECUTION_ID = "exec_01jd5m3x7k0000000000000000"
ENQUEUED = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
ENQUEUE_MS = int(ENQUEUED.timestamp() * 1000)


def test_a_run_job_decodes_with_arqs_deserialize_job_as_run_execution_of_the_id() -> None:
    job = deserialize_job(run_job_payload(EXECUTION_ID, ENQUEUE_MS), deserializer=arq_deserialize)
    assert job.function == RUN_EXECUTION
    assert tuple(job.args) == (EXECUTION_ID,)
    assert job.kwargs == {}
    assert job.enqueue_time == ENQUEUED
    assert job.job_try is None  # arq counts tries itself, from 1


def test_a_delivery_job_decodes_with_arqs_deserialize_job_as_deliver_webhook_of_the_id() -> None:
    job = deserialize_job(
        delivery_job_payload(EXECUTION_ID, ENQUEUE_MS), deserializer=arq_deserialize
    )
    assert job.function == DELIVER_WEBHOOK
    assert tuple(job.args) == (EXECUTION_ID,)
    assert job.kwargs == {}
    assert job.enqueue_time == ENQUEUED
    assert job.job_try is None


def test_a_run_job_is_what_arqs_enqueue_job_would_write_and_its_worker_reads() -> None:
    ours = run_job_payload(EXECUTION_ID, ENQUEUE_MS)
    arqs = serialize_job(
        RUN_EXECUTION, (EXECUTION_ID,), {}, None, ENQUEUE_MS, serializer=arq_serialize
    )
    assert ours == arqs
    function, args, kwargs, job_try, enqueue_ms = deserialize_job_raw(
        ours, deserializer=arq_deserialize
    )
    assert (function, tuple(args), kwargs, enqueue_ms) == (
        RUN_EXECUTION,
        (EXECUTION_ID,),
        {},
        ENQUEUE_MS,
    )
    assert job_try is None


def test_a_record_is_msgpack_whose_only_argument_is_the_execution_id() -> None:
    record = arq_deserialize(delivery_job_payload(EXECUTION_ID, ENQUEUE_MS))
    assert record == {
        "t": None,
        "f": DELIVER_WEBHOOK,
        "a": [EXECUTION_ID],
        "k": {},
        "et": ENQUEUE_MS,
    }


async def test_every_job_the_scripts_queue_has_a_function_on_the_worker() -> None:
    # Async, so that arq's Worker takes the running loop (see test_worker_settings.py).
    settings = from_env({}, redis_url="redis://127.0.0.1:1/0", key_prefix="acme")
    worker = Worker(**worker_settings(settings))
    assert {RUN_EXECUTION, DELIVER_WEBHOOK, sweep_cron_name("acme")} <= set(worker.functions)


def test_job_records_and_locks_are_at_arqs_own_keys() -> None:
    keys = Keys("acme")
    assert keys.arq_job(EXECUTION_ID) == job_key_prefix + EXECUTION_ID
    assert keys.arq_in_progress(EXECUTION_ID) == in_progress_key_prefix + EXECUTION_ID


def test_a_delivery_job_has_an_id_of_its_own_beside_the_run_job() -> None:
    assert delivery_job_id(EXECUTION_ID) != EXECUTION_ID


def test_a_failed_jobs_result_is_written_with_the_text_of_its_exception() -> None:
    # arq serializes the exception a job failed with ("job expired", tries spent); without
    # a way to encode it, arq logs a traceback and writes "unable to serialize result".
    data = serialize_result(
        function=RUN_EXECUTION,
        args=(EXECUTION_ID,),
        kwargs={},
        job_try=1,
        enqueue_time_ms=ENQUEUE_MS,
        success=False,
        result=JobExecutionFailed("job expired"),
        start_ms=ENQUEUE_MS,
        finished_ms=ENQUEUE_MS,
        ref=f"{EXECUTION_ID}:{RUN_EXECUTION}",
        queue_name="arq:queue",
        job_id=EXECUTION_ID,
        serializer=arq_serialize,
    )
    assert data is not None
    result = arq_deserialize(data)
    assert result["r"] == "JobExecutionFailed: job expired"
    assert result["s"] is False
