"""Traces across agencies: W3C trace context in every event, OpenTelemetry spans around the
work each agency does with it.

Every event carries the trace context of the work that caused it (the CloudEvents
distributed-tracing extension, `CloudEvent.traceparent`): the authority's command, the front
door's submission, or the event an outcome answers. Each piece of work is a span whose
parent is the context of the event that caused it (`span`), and whose own context goes on
the events it emits (`current`), so one request is followed from the front door through
each agency's decision to the outcomes, and on to the agencies reading those, by one trace
id.

Spans are recorded and exported only when configured (`configure`: OTLP over HTTP to
`OTEL_EXPORTER_OTLP_ENDPOINT`, the standard variable, or a test's exporter). Unconfigured,
no span is recorded, but the context still travels: an event's outcomes carry its trace
(same trace id, its parent span), and work with no parent starts a new trace id, so traces
can be joined across agencies even where one of them records nothing.

Span names and attributes carry event ids, types, subjects' agencies and group names:
never a subject (a permit number), a key or a value, since those may be personal.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["SpanKind", "TraceContext", "configure", "current", "link", "of_event", "recording",
           "shutdown", "span"]

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: TracerProvider | None = None


@dataclass(frozen=True)
class TraceContext:
    """What an event carries of the work that caused it."""

    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        """The 32 hex digits every event and span of one trace shares."""
        return self.traceparent.split("-")[1]

    def as_event_fields(self) -> dict[str, str]:
        """The envelope attributes (`CloudEvent.traceparent`, `tracestate`) to set."""
        out = {"traceparent": self.traceparent}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "hub_trace_context", default=None)


def configure(service: str, *, exporter: SpanExporter | None = None,
              processor: SpanProcessor | None = None) -> bool:
    """Record spans as `service` (e.g. `permit-hub-card`): to `exporter` or `processor` when
    given (tests), else by OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` or
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Returns whether spans are now recorded."""
    global _tracer, _provider
    if processor is None and exporter is None and not (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    if processor is None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        processor = BatchSpanProcessor(exporter)
    shutdown()
    _provider = TracerProvider(resource=Resource.create({"service.name": service}))
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("permit-hub")
    return True


def shutdown() -> None:
    """Export what is pending and stop recording (at process exit)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer = None, trace.NoOpTracer()


def recording() -> bool:
    """Whether spans are recorded (and exported) in this process."""
    return _provider is not None


def current() -> TraceContext | None:
    """The trace context events emitted now should carry (None outside any span)."""
    return _current.get()


def link(context: TraceContext | None) -> Link | None:
    """A span link to the work behind an event (for work done for many events at once)."""
    if context is None:
        return None
    parent = trace.get_current_span(_PROPAGATOR.extract(_carrier(context))).get_span_context()
    return Link(parent) if parent.is_valid else None


@contextlib.contextmanager
def span(
    name: str, *, parent: TraceContext | None = None, kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None, links: list[Link] | None = None,
) -> Iterator[TraceContext]:
    """A span for one piece of work, child of `parent` (an event's trace context) or of the
    span around it; yields the trace context the events it emits carry."""
    if _provider is None:
        # Nothing recorded: pass the trace on without OpenTelemetry (the hot path of every
        # handled event costs a context variable, not a propagator's parse).
        here = parent or _current.get() or _new_trace()
        token = _current.set(here)
        try:
            yield here
        finally:
            _current.reset(token)
        return
    context = _PROPAGATOR.extract(_carrier(parent)) if parent is not None else None
    with _tracer.start_as_current_span(name, context=context, kind=kind,
                                       attributes=dict(attributes or {}),
                                       links=links or None) as opened:
        made = opened.get_span_context()
        if made.is_valid:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            here = TraceContext(carrier["traceparent"], carrier.get("tracestate"))
        else:
            here = parent or _current.get() or _new_trace()
        token = _current.set(here)
        try:
            yield here
        finally:
            _current.reset(token)


def of_event(event: Any) -> TraceContext | None:
    """The trace context an event carries, if any."""
    traceparent = getattr(event, "traceparent", None)
    if not traceparent:
        return None
    return TraceContext(traceparent, getattr(event, "tracestate", None))


def _carrier(context: TraceContext | None) -> dict[str, str]:
    if context is None:
        return {}
    return context.as_event_fields()


def _new_trace() -> TraceContext:
    """A new trace id with a random parent id, where no span is recorded. Marked sampled, so
    that the agencies that do record spans record their part of it: the default sampler
    follows the parent's flag, and an agency that records nothing must not stop the others
    (an agency may choose otherwise with OTEL_TRACES_SAMPLER)."""
    return TraceContext(f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")
