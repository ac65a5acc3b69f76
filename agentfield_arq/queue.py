"""The arq side of the queue: job names, and job payloads built without arq's enqueue call.

The API writes the job payload itself, inside the same Lua script that creates the execution,
so that an execution is never stored without its job nor queued without its record.
"""

from __future__ import annotations

from arq.jobs import serialize_job
from redis.asyncio import Redis

from agentfield_arq.codec import arq_serialize

RUN_EXECUTION = "run_execution"
SWEEP_DEADLINES = "sweep_deadlines"


def job_payload(function: str, job_id: str, enqueue_ms: int) -> bytes:
    """arq's job record for `function(job_id)`, msgpack-encoded; arguments are ids only."""
    return serialize_job(function, (job_id,), {}, None, enqueue_ms, serializer=arq_serialize)


def connect(url: str) -> Redis:
    """A Redis client returning bytes, so that stored JSON documents pass through untouched."""
    client: Redis = Redis.from_url(url, decode_responses=False, health_check_interval=30)
    return client
