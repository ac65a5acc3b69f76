"""BASELINE for the drain, scaling and end-to-end figures: bare arq, nothing of agentfield-arq.

One job function does what a hand-written arq job for an agent call would do: one httpx POST
to the agent and one HSET of its answer. The worker runs with arq's own defaults (pickle
serializer, results kept, its standard INFO log line per job, as the `arq` command sets up) and
with the same concurrency and poll delay as our workers, on the same Redis, against the same
inline agent.

Run as `python -m bench.baseline_arq --redis URL --agent URL --queue NAME`.
"""

from __future__ import annotations

import argparse
import logging.config
from typing import Any

import httpx
from arq.connections import RedisSettings
from arq.logs import default_log_config
from arq.worker import func, run_worker

from agentfield_arq.core.settings import Settings

FUNCTION = "call_agent"
DONE_KEY = "baseline:done"
BODY = b'{"n":1}'


async def call_agent(ctx: dict[str, Any], n: int) -> bytes:
    """The baseline job: one POST to the agent, one HSET of the answer."""
    answer = await ctx["http"].post(
        ctx["agent_url"], content=BODY, headers={"Content-Type": "application/json"}
    )
    await ctx["redis"].hset(DONE_KEY, ctx["job_id"], answer.content)
    content: bytes = answer.content
    return content


def worker_kwargs(redis_url: str, agent_url: str, queue: str) -> dict[str, Any]:
    """arq Worker arguments: arq's defaults plus our workers' concurrency and poll delay."""
    ours = Settings()

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["agent_url"] = agent_url
        ctx["http"] = httpx.AsyncClient(
            timeout=httpx.Timeout(ours.agent_timeout_s),
            limits=httpx.Limits(max_connections=ours.worker_concurrency),
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await ctx["http"].aclose()

    return {
        "functions": [func(call_agent, name=FUNCTION)],
        "redis_settings": RedisSettings.from_dsn(redis_url),
        "queue_name": queue,
        "max_jobs": ours.worker_concurrency,
        "poll_delay": ours.worker_poll_delay_s,
        "health_check_interval": 30,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
    }


def main() -> None:
    """Entry point: one baseline worker process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--queue", required=True)
    args = parser.parse_args()
    logging.config.dictConfig(default_log_config(verbose=False))
    run_worker(worker_kwargs(args.redis, args.agent, args.queue))


if __name__ == "__main__":
    main()
