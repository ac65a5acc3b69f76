"""Trace context: what is accepted, what is passed on, and spans with an in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentfield_arq.core.tracing import Tracing, from_env, parse_traceparent
from agentfield_arq.kernel.errors import ConfigurationError
from agentfield_arq.sdk.context import ExecutionContext

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_valid_traceparent_is_kept_in_lower_case() -> None:
    assert parse_traceparent(PARENT.upper()) == PARENT


def test_without_spans_the_incoming_traceparent_is_passed_on_unchanged() -> None:
    with Tracing().span("execute a.b", PARENT) as passed:
        assert passed == PARENT


def test_with_spans_each_hop_is_a_child_of_the_traceparent_it_was_given() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("test"))
    with tracing.span("execute a.b", PARENT, "SERVER") as passed:
        assert passed is not None
        assert passed != PARENT
        assert passed.split("-")[1] == PARENT.split("-")[1]
    (span,) = exporter.get_finished_spans()
    assert span.name == "execute a.b"
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT.split("-")[2]
    assert format(span.context.span_id, "016x") == passed.split("-")[2]


def test_spans_are_off_unless_an_exporter_is_named() -> None:
    assert from_env("api", {}).tracer is None
    assert from_env("api", {"OTEL_TRACES_EXPORTER": "none"}).tracer is None
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER=zipkinish"):
        from_env("api", {"OTEL_TRACES_EXPORTER": "zipkinish"})


def test_an_agents_children_and_reports_carry_the_trace_it_was_called_with() -> None:
    context = ExecutionContext.from_headers({"x-execution-id": "exec_1", "traceparent": PARENT})
    assert context.child_headers()["traceparent"] == PARENT
    assert context.trace_headers() == {"traceparent": PARENT}
    assert ExecutionContext.from_headers({}).trace_headers() == {}
