"""`python -m bench.vectors`: vector search latency at the per-scope cap.

Fills one scope with `AGENTFIELD_ARQ_MEMORY_MAX_VECTORS_PER_SCOPE` (1,000) vectors of 1,536
dimensions (an OpenAI-sized embedding) through `VectorStore`, then times searches of that scope
one at a time, in this process, against its own valkey-server: the whole cost of the route
but HTTP (reading the scope's two hashes, decoding every record, exact cosine, top 10).
Prints the median and p95.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from agentfield_arq.core.connection import connect
from agentfield_arq.core.memory import Scope
from agentfield_arq.core.settings import from_env
from agentfield_arq.core.vectors import VectorStore
from agentfield_arq.ops.embedded import EmbeddedRedis
from bench.stats import percentile

DIMS = 1536
SEARCHES = 30


async def measure(url: str) -> list[float]:
    """Milliseconds of each of SEARCHES searches over a full scope."""
    settings = from_env({}, redis_url=url, key_prefix="bench")
    redis = connect(url)
    store = VectorStore(redis, settings)
    scope = Scope("workflow", "run_bench")
    rng = random.Random(7)
    try:
        for i in range(settings.memory_max_vectors_per_scope):
            vector = [rng.uniform(-1, 1) for _ in range(DIMS)]
            await store.set(scope, f"doc-{i}", vector, {"n": i})
        timings = []
        for _ in range(SEARCHES):
            query = [rng.uniform(-1, 1) for _ in range(DIMS)]
            started = time.perf_counter()
            await store.search(scope, query, 10, None)
            timings.append((time.perf_counter() - started) * 1000)
        return timings
    finally:
        await redis.aclose()


def main() -> None:
    """Start a valkey-server of our own, measure, stop it, print the figures."""
    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedRedis(Path(folder), appendonly=False)
        url = server.start()
        try:
            timings = asyncio.run(measure(url))
        finally:
            server.stop()
    print(
        f"vector search, 1000 x {DIMS}: median {statistics.median(timings):.1f} ms, "
        f"p95 {percentile(timings, 0.95):.1f} ms over {SEARCHES} searches"
    )


if __name__ == "__main__":
    main()
