"""W3C trace context, carried through every hop, and OpenTelemetry spans when asked for.

A caller's `traceparent` is kept on the execution and passed on: to the agent (its request
header), back from the agent (its callbacks, and the submissions of its `app.call`, which our
SDK sends with the header it was called with) and to the webhook receiver. That much needs no
dependency.

Spans are made only when the operator turns an exporter on with OpenTelemetry's own variable,
`OTEL_TRACES_EXPORTER` (`console`, or `otlp` with `opentelemetry-exporter-otlp-proto-http`
installed); OpenTelemetry's SDK comes with the `otel` extra and is imported only then, so the
API stays light when tracing is off. Each hop is then a span, and the `traceparent` passed on
is that span's: the API's `execute` span is the parent of the worker's `run` span, whose
`call` span is the parent of whatever the agent does, its children's `execute` spans included.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from agentfield_arq.kernel.errors import ConfigurationError

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def parse_traceparent(value: str | None) -> str | None:
    """A version-00 `traceparent` as W3C defines it, or None: an invalid one is ignored (the
    trace restarts), never refused."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if _TRACEPARENT.fullmatch(value) else None


class Tracing:
    """Makes a span per hop with `tracer` (an OpenTelemetry Tracer), or, without one, only
    carries the incoming `traceparent` on unchanged."""

    def __init__(self, tracer: Any = None) -> None:
        self.tracer = tracer

    def span(
        self,
        name: str,
        parent: str | None,
        kind: str = "INTERNAL",
        attributes: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractContextManager[str | None]:
        """A span named `name` under `parent` (a traceparent); yields the traceparent to pass
        on: the span's, or `parent` itself when spans are off (without a generator's cost, on
        every request)."""
        if self.tracer is None:
            return contextlib.nullcontext(parent)
        return self._span(name, parent, kind, attributes)

    @contextlib.contextmanager
    def _span(
        self, name: str, parent: str | None, kind: str, attributes: Mapping[str, str] | None
    ) -> Iterator[str | None]:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = TraceContextTextMapPropagator()
        context = propagator.extract({TRACEPARENT: parent} if parent else {})
        with self.tracer.start_as_current_span(
            name, context=context, kind=getattr(trace.SpanKind, kind), attributes=attributes
        ):
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            yield carrier.get(TRACEPARENT, parent)


def from_env(service: str, environ: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as OpenTelemetry's variables ask (entry points only): spans when
    `OTEL_TRACES_EXPORTER` names an exporter, else none."""
    environ = os.environ if environ is None else environ
    exporter = environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if exporter in ("", "none"):
        return Tracing()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter == "console":
        span_exporter: Any = ConsoleSpanExporter()
    elif exporter == "otlp":  # an optional package of the operator's choosing
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        span_exporter = otlp.OTLPSpanExporter()
    else:
        raise ConfigurationError(f"OTEL_TRACES_EXPORTER={exporter}: use console, otlp or none")
    name = environ.get("OTEL_SERVICE_NAME") or f"agentfield-arq-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return Tracing(provider.get_tracer("agentfield_arq"))
