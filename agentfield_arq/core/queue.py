"""The arq side of the queue: job names, and job payloads built without arq's enqueue call.

The API writes the job payload itself, inside the same Lua script that creates the execution,
so that an execution is never stored without its job nor queued without its record.
"""

from __future__ import annotations

from arq.jobs import serialize_job
from redis.asyncio import Redis

from agentfield_arq.core.connection import PackedConnection
from agentfield_arq.kernel.codec import arq_serialize

RUN_EXECUTION = "run_execution"
SWEEP_DEADLINES = "sweep_deadlines"
DELIVER_WEBHOOK = "deliver_webhook"


def job_payload(function: str, argument: str, enqueue_ms: int) -> bytes:
    """arq's job record for `function(argument)`, msgpack-encoded; arguments are ids only."""
    return serialize_job(function, (argument,), {}, None, enqueue_ms, serializer=arq_serialize)


def delivery_job_id(execution_id: str) -> str:
    """The arq job id of an execution's webhook delivery (its run job's id is the execution id)."""
    return f"whk_{execution_id}"


def webhook_id(execution_id: str) -> str:
    """The Standard Webhooks `webhook-id` of an execution's delivery: stable across retries."""
    return f"msg_{execution_id.removeprefix('exec_')}"


def connect(url: str) -> Redis:
    """A Redis client returning bytes, so that stored JSON documents pass through untouched."""
    client: Redis = Redis.from_url(
        url, decode_responses=False, health_check_interval=30, connection_class=PackedConnection
    )
    return client
