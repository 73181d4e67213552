"""One e-card request followed end to end by its trace id, on the real broker and database
(hub/tracing.py, the CloudEvents distributed-tracing extension).

The agencies run in this process with spans recorded in memory. Each decision of the
authority starts a trace: the copy of its event each agency receives carries it, and an
agency's work on the event is a span of it. The front door's submission starts the request's trace:
the card's decision is a child of the submission, the ECardIssued outcome carries the
decision's context (on the full topic the front door reads, and on social insurance's
copy), and social insurance's work on that outcome is a child of the card's decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from consumers.card.requests import registration_request
from hub import bootstrap, tracing
from hub.kafka import publish
from hub.kafka_credentials import front_door
from hub.settings import Settings
from producers.work_permit import authority
from schemas import topics
from schemas.card import ECardIssued, ECardRegistrationRequested
from schemas.permits import Category, NotificationLetterIssued, PermitIssued
from tests.factories import employer, holder
from tests.integration.hub_fixtures import eventually, permit_topic, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure("permit-hub-test", processor=SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def span_id(traceparent: str) -> str:
    return traceparent.split("-")[2]


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def hexes(s: ReadableSpan) -> tuple[str, str, str | None]:
    """A span's trace id, its id and its parent's id, as traceparent spells them."""
    assert s.context is not None
    parent = f"{s.parent.span_id:016x}" if s.parent is not None else None
    return f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}", parent


async def events_of(settings: Settings, topic: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(r.value) for r in await read_topic(settings, topic))
            if e.get("type") == event_type]


async def test_one_ecard_request_is_one_trace_across_agencies(
    hub_settings: Settings, spans: InMemorySpanExporter
) -> None:
    settings = hub_settings
    async with (bootstrap.running_agency(settings, "workpermit"),
                bootstrap.running_agency(settings, "card"),
                bootstrap.running_agency(settings, "social_insurance")):
        start = date.today() - timedelta(days=30)
        async with authority(settings) as auth:
            letter = await auth.apply(holder=holder(name="Traced Person"), employer=employer(),
                                      category=Category.B, position="Engineer",
                                      approved_months=12, today=start)
            await auth.issue(letter.permit_no, valid_from=start + timedelta(days=5),
                             today=start + timedelta(days=5))
        permit_no = letter.permit_no

        async def card_knows() -> bool:
            async with bootstrap.pool(settings, "card", max_size=1) as p:
                status = await p.fetchval(
                    "SELECT status FROM card_permits WHERE permit_no = $1", permit_no)
            return status == "active" and bool(
                named(spans, f"handle {NotificationLetterIssued.EVENT_TYPE}"))
        await eventually(card_knows, timeout=60, what="the card's view to hold the permit")

        request = registration_request("Traced Person", permit_no=permit_no)
        await publish(settings, topics.CARD_REQUESTS, [request],
                      signer=bootstrap.signing_key(settings, front_door("card")))

        async def answered() -> bool:
            issued = await events_of(settings, settings.topic(topics.CARD_EVENTS),
                                     ECardIssued.EVENT_TYPE)
            return bool(issued) and bool(named(spans, f"handle {ECardIssued.EVENT_TYPE}"))
        await eventually(answered, timeout=60, what="the e-card and social insurance's record")

    # Each decision of the authority starts a trace; every agency's copy of its event
    # carries it, and an agency's work on the event is a span of it (social insurance
    # records the notification letter).
    [lettered] = named(spans, f"decide {NotificationLetterIssued.EVENT_TYPE}")
    [decided] = named(spans, f"decide {PermitIssued.EVENT_TYPE}")
    permit_trace, decision_id, _ = hexes(decided)
    assert hexes(lettered)[0] != permit_trace
    for agency in ("card", "public_security", "social_insurance"):
        [copy] = await events_of(settings, permit_topic(settings, agency), PermitIssued.EVENT_TYPE)
        assert trace_id(copy["traceparent"]) == permit_trace, agency
        assert span_id(copy["traceparent"]) == decision_id, agency
    [si_on_letter] = named(spans, f"handle {NotificationLetterIssued.EVENT_TYPE}")
    assert hexes(si_on_letter)[0] == hexes(lettered)[0]
    assert hexes(si_on_letter)[2] == hexes(lettered)[1]

    # The request's trace, hop by hop.
    [submitted] = named(spans, f"submit {ECardRegistrationRequested.EVENT_TYPE}")
    request_trace, submit_id, _ = hexes(submitted)
    assert request_trace != permit_trace
    [card_decision] = named(spans, f"handle {ECardRegistrationRequested.EVENT_TYPE}")
    assert hexes(card_decision)[0] == request_trace
    assert hexes(card_decision)[2] == submit_id
    full = await events_of(settings, settings.topic(topics.CARD_EVENTS), ECardIssued.EVENT_TYPE)
    si_copy = await events_of(settings, settings.topic(topics.audience_topic(
        topics.CARD_EVENTS, "social_insurance")), ECardIssued.EVENT_TYPE)
    for outcome in (*full, *si_copy):
        assert trace_id(outcome["traceparent"]) == request_trace
        assert span_id(outcome["traceparent"]) == hexes(card_decision)[1]
    [si_on_card] = named(spans, f"handle {ECardIssued.EVENT_TYPE}")
    assert hexes(si_on_card)[0] == request_trace
    assert hexes(si_on_card)[2] == hexes(card_decision)[1]
    # The card's relay published the outcome in a span linked to the decision.
    linked = [s for s in named(spans, "publish card")
              if any(f"{link.context.trace_id:032x}" == request_trace for link in s.links)]
    assert linked
    # Nothing personal in any span: no name, no permit number.
    for s in spans.get_finished_spans():
        text = json.dumps({"name": s.name, **dict(s.attributes or {})}, default=str)
        assert "Traced Person" not in text
        assert permit_no not in text
