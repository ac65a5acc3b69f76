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


async def measure(url: str) -> tuple[list[float], list[float]]:
    """Milliseconds of each of SEARCHES searches over a full scope: wall clock, and CPU time of
    this process (which does not count waiting for a busy machine's other processes)."""
    settings = from_env({}, redis_url=url, key_prefix="bench")
    redis = connect(url)
    store = VectorStore(redis, settings)
    scope = Scope("workflow", "run_bench")
    rng = random.Random(7)
    try:
        for i in range(settings.memory_max_vectors_per_scope):
            vector = [rng.uniform(-1, 1) for _ in range(DIMS)]
            await store.set(scope, f"doc-{i}", vector, {"n": i})
        wall, cpu = [], []
        for _ in range(SEARCHES):
            query = [rng.uniform(-1, 1) for _ in range(DIMS)]
            started, used = time.perf_counter(), time.process_time()
            await store.search(scope, query, 10, None)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
        return wall, cpu
    finally:
        await redis.aclose()


def main() -> None:
    """Start a valkey-server of our own, measure, stop it, print the figures."""
    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedRedis(Path(folder), appendonly=False)
        url = server.start()
        try:
            wall, cpu = asyncio.run(measure(url))
        finally:
            server.stop()
    print(
        f"vector search, 1000 x {DIMS}: median {statistics.median(wall):.1f} ms, "
        f"p95 {percentile(wall, 0.95):.1f} ms over {SEARCHES} searches; "
        f"CPU of this process median {statistics.median(cpu):.1f} ms"
    )


if __name__ == "__main__":
    main()
