"""GET /metrics: the deployment's metrics in Prometheus's text format, built per scrape from a
`core.metrics.Snapshot` (every value comes from Redis; see that module), with the official
client's metric families and encoder. docs/contract.md lists each metric."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.deps import deps
from agentfield_arq.core.metrics import BUCKETS_MS, Gauges, Histogram, Snapshot, combine

NS = "agentfield_arq"


def _histogram(name: str, documentation: str, h: Histogram) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound in (*map(str, BUCKETS_MS), "+Inf"):
        cumulative += h.buckets[bound]
        le = bound if bound == "+Inf" else repr(int(bound) / 1000)
        buckets.append((le, cumulative))
    return HistogramMetricFamily(
        f"{NS}_{name}", documentation, buckets=buckets, sum_value=h.sum_ms / 1000
    )


def _by(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, float],
) -> Metric:
    family = kind(f"{NS}_{name}", documentation, labels=[label])
    for value, count in sorted(values.items()):
        family.add_metric([value], count)
    return family


def families(s: Snapshot) -> Iterator[Metric]:
    """Every metric of the snapshot."""
    gauge, counter = GaugeMetricFamily, CounterMetricFamily
    yield _by(gauge, "executions", "Executions retained, by current status", "status", s.by_status)
    yield _by(counter, "executions_created", "Executions created, by target", "target", s.created)
    ended = counter(
        f"{NS}_executions_ended",
        "Executions ended, by target and terminal status",
        labels=["target", "status"],
    )
    for (target, status), count in sorted(s.ended.items()):
        ended.add_metric([target, status], count)
    yield ended
    yield _by(gauge, "queue_depth", "Jobs queued (due or later), by kind", "kind", s.queue_by_kind)
    yield gauge(f"{NS}_queue_jobs", "Jobs queued, all kinds", s.queue_jobs)
    yield gauge(
        f"{NS}_queue_oldest_age_seconds", "How long the oldest due job waited", s.oldest_queued_s
    )
    yield _histogram("enqueue_to_start_seconds", "From creation to a worker's first claim", s.wait)
    yield _histogram("start_to_end_seconds", "From the start to the terminal status", s.run)
    yield _by(counter, "agent_calls", "Calls to agents, by outcome", "outcome", s.agent_calls)
    yield _by(
        counter,
        "webhook_attempts",
        "Webhook delivery attempts, by outcome",
        "outcome",
        s.webhook_attempts,
    )
    yield gauge(f"{NS}_webhook_dead", "Dead webhook deliveries kept", s.webhook_dead)
    yield gauge(f"{NS}_workers_alive", "Worker processes heard from lately", s.workers_alive)
    yield _by(gauge, "nodes", "Registered agent nodes, by liveness", "status", s.nodes)
    yield gauge(f"{NS}_redis_rtt_seconds", "One PING's round trip from this API", s.redis_rtt_s)


class _Snapshot:
    """A collector of one snapshot, so that a registry built per scrape encodes it."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshot)


async def metrics(request: Request) -> Response:
    """The Prometheus exposition of the deployment's metrics."""
    shards = deps(request).shards
    # With several Redis (core/routing.py), every one's at once, added up.
    snapshot = combine(
        list(
            await asyncio.gather(
                *(Gauges(s.redis, s.store.keys, s.nodes).snapshot() for s in shards)
            )
        )
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
