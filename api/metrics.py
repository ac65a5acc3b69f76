"""GET /metrics: the deployment's metrics in Prometheus's text format, built per scrape from a
`core.metrics.Snapshot` of each Redis (every value comes from Redis; see that module), with the
official client's metric families and encoder. docs/contract.md lists each metric.

With nodes over several Redis (core/routing.py), every series carries a `redis` label, the
code of the Redis it was read from (`0`: home): a queue, its workers and its nodes are that
Redis's own, and an autoscaler of one Redis's workers selects its label; `sum` without the
label gives the deployment's figure. With one Redis there is no such label."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

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
from agentfield_arq.core.metrics import BUCKETS_MS, Gauges, Histogram, Snapshot

NS = "agentfield_arq"
REDIS_LABEL = "redis"
Values = Callable[[Snapshot], Iterable[tuple[Sequence[str], float]]]


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    cumulative, buckets = 0, list[tuple[str, float]]()
    for bound in (*map(str, BUCKETS_MS), "+Inf"):
        cumulative += h.buckets[bound]
        le = bound if bound == "+Inf" else repr(int(bound) / 1000)
        buckets.append((le, cumulative))
    return buckets


class _Families:
    """Builds each family over the snapshots of every Redis, labelled by code when several."""

    def __init__(self, snapshots: Mapping[str, Snapshot]) -> None:
        self.parts = sorted(snapshots.items())
        self.extra = [REDIS_LABEL] if len(self.parts) > 1 else []

    def _labels(self, values: Sequence[str], code: str) -> list[str]:
        return [*values, code] if self.extra else list(values)

    def of(
        self,
        kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
        name: str,
        documentation: str,
        labels: Sequence[str],
        values: Values,
    ) -> Metric:
        family = kind(f"{NS}_{name}", documentation, labels=[*labels, *self.extra])
        for code, snapshot in self.parts:
            for key, value in sorted(values(snapshot)):
                family.add_metric(self._labels(key, code), value)
        return family

    def histogram(
        self, name: str, documentation: str, of: Callable[[Snapshot], Histogram]
    ) -> Metric:
        family = HistogramMetricFamily(f"{NS}_{name}", documentation, labels=self.extra)
        for code, snapshot in self.parts:
            h = of(snapshot)
            family.add_metric(self._labels((), code), _buckets(h), sum_value=h.sum_ms / 1000)
        return family


def _by(values: Callable[[Snapshot], Mapping[str, float]]) -> Values:
    return lambda s: (((key,), value) for key, value in values(s).items())


def _one(value: Callable[[Snapshot], float]) -> Values:
    return lambda s: [((), value(s))]


def families(snapshots: Mapping[str, Snapshot]) -> Iterator[Metric]:
    """Every metric of the snapshots, keyed by the code of their Redis."""
    f = _Families(snapshots)
    gauge, counter = GaugeMetricFamily, CounterMetricFamily
    yield f.of(
        gauge,
        "executions",
        "Executions retained, by current status",
        ["status"],
        _by(lambda s: s.by_status),
    )
    yield f.of(
        counter,
        "executions_created",
        "Executions created, by target",
        ["target"],
        _by(lambda s: s.created),
    )
    yield f.of(
        counter,
        "executions_ended",
        "Executions ended, by target and terminal status",
        ["target", "status"],
        lambda s: s.ended.items(),
    )
    yield f.of(
        gauge,
        "queue_depth",
        "Jobs queued (due or later), by kind",
        ["kind"],
        _by(lambda s: s.queue_by_kind),
    )
    yield f.of(gauge, "queue_jobs", "Jobs queued, all kinds", [], _one(lambda s: s.queue_jobs))
    yield f.of(
        gauge,
        "queue_oldest_age_seconds",
        "How long the oldest due job waited",
        [],
        _one(lambda s: s.oldest_queued_s),
    )
    yield f.histogram(
        "enqueue_to_start_seconds", "From creation to a worker's first claim", lambda s: s.wait
    )
    yield f.histogram(
        "start_to_end_seconds", "From the start to the terminal status", lambda s: s.run
    )
    yield f.of(
        counter,
        "agent_calls",
        "Calls to agents, by outcome",
        ["outcome"],
        _by(lambda s: s.agent_calls),
    )
    yield f.of(
        counter,
        "webhook_attempts",
        "Webhook delivery attempts, by outcome",
        ["outcome"],
        _by(lambda s: s.webhook_attempts),
    )
    yield f.of(
        gauge, "webhook_dead", "Dead webhook deliveries kept", [], _one(lambda s: s.webhook_dead)
    )
    yield f.of(
        gauge,
        "workers_alive",
        "Worker processes heard from lately",
        [],
        _one(lambda s: s.workers_alive),
    )
    yield f.of(
        gauge, "nodes", "Registered agent nodes, by liveness", ["status"], _by(lambda s: s.nodes)
    )
    yield f.of(
        gauge,
        "redis_rtt_seconds",
        "One PING's round trip from this API",
        [],
        _one(lambda s: s.redis_rtt_s),
    )


class _Snapshots:
    """A collector of one scrape's snapshots, so that a registry built per scrape encodes them."""

    def __init__(self, snapshots: Mapping[str, Snapshot]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshots)


async def metrics(request: Request) -> Response:
    """The Prometheus exposition of the deployment's metrics."""
    shards = list(deps(request).shards)
    # With several Redis (core/routing.py), every one's at once.
    read = await asyncio.gather(
        *(Gauges(s.redis, s.store.keys, s.nodes).snapshot() for s in shards)
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        _Snapshots({s.code: snapshot for s, snapshot in zip(shards, read, strict=True)})
    )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
