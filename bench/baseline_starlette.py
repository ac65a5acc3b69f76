"""BASELINE for the enqueue figures: a bare Starlette endpoint, nothing of agentfield-arq.

`POST /enqueue/{target}` reads the JSON body, writes it with one pipelined Redis round trip
(HSET of the job plus ZADD to a queue) and answers 202 with a small JSON body. It is what a
plain Starlette service that "just queues the thing" costs, served the same way as the API
(one uvicorn process, uvloop and httptools, no access log), on the same Redis.

Run as `python -m bench.baseline_starlette --port N --redis URL`.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PREFIX = "baseline"
QUEUE = f"{PREFIX}:queue"


def create_app(redis_url: str) -> Starlette:
    """The baseline app; its Redis client lives as long as its lifespan."""
    redis: Redis = Redis.from_url(redis_url)

    async def enqueue(request: Request) -> JSONResponse:
        body = await request.json()
        job_id = uuid.uuid4().hex
        now_ms = time.time_ns() // 1_000_000
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                f"{PREFIX}:job:{job_id}",
                mapping={"target": request.path_params["target"], "input": str(body["input"])},
            )
            pipe.zadd(QUEUE, {job_id: now_ms})
            await pipe.execute()
        return JSONResponse({"id": job_id, "status": "queued"}, status_code=202)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    routes = [Route("/enqueue/{target}", enqueue, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    """Entry point: serve the baseline on 127.0.0.1 like `agentfield-arq api` serves the API."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.redis),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
