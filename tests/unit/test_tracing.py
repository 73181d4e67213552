"""hub/tracing.py without an exporter (the default): nothing is recorded, but the trace
travels — work on an event carries the event's trace, work with none starts a new one; with
spans recorded, the work is a child span and carries its own context."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub import tracing
from schemas.envelope import TRACEPARENT_PATTERN

PARENT = tracing.TraceContext("00-" + "a" * 32 + "-" + "b" * 16 + "-01", "vendor=1")


def test_unrecorded_work_carries_the_events_trace_or_starts_one() -> None:
    assert not tracing.recording()
    assert tracing.current() is None
    with tracing.span("handle", parent=PARENT) as here:
        assert here == PARENT
        assert tracing.current() == PARENT
        with tracing.span("inner") as inner:
            assert inner == PARENT  # the work around it
    assert tracing.current() is None
    with tracing.span("decide") as started, tracing.span("again") as other:
        assert TRACEPARENT_PATTERN.match(started.traceparent)
        assert other == started
    with tracing.span("decide") as second:
        assert second.trace_id != started.trace_id


def test_recorded_work_is_a_child_span_and_carries_its_own_context() -> None:
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", processor=SimpleSpanProcessor(exporter))
    try:
        with tracing.span("handle", parent=PARENT) as here:
            assert here.trace_id == PARENT.trace_id
            assert here.traceparent != PARENT.traceparent
            assert here.tracestate == "vendor=1"
        [span] = exporter.get_finished_spans()
        assert span.parent is not None
        assert f"{span.parent.span_id:016x}" == "b" * 16
        assert f"{span.context.span_id:016x}" == here.traceparent.split("-")[2]
    finally:
        tracing.shutdown()
    assert not tracing.recording()
