"""The Social Security Card service on the real broker and database: the authority's
permits flow in, front-door requests and SSNs arrive on their topics, and every outcome
comes out of the card database's outbox on `card.card-events.v1` exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.card.requests import registration_request, sweep_request
from hub import bootstrap
from hub.consumer import ViewConsumer
from hub.kafka import publish
from hub.settings import Settings
from producers.work_permit import Authority, authority
from schemas import CloudEvent, Codec, topics
from schemas.card import (
    CARD_OUTCOME_TYPES,
    ECardIssued,
    ECardRejected,
    NotificationKind,
    PermitNotificationSent,
    PhysicalCardIssued,
)
from schemas.permits import CancellationReason, Category, PermitRecord, PermitStandard, PermitStatus
from schemas.social_insurance import SocialSecurityNumberIssued, SocialSecurityNumberIssuedData
from tests.factories import employer, holder
from tests.integration.hub_fixtures import (
    eventually,
    read_topic,
    signed,
    with_home,
    writer_of,
)

pytestmark = pytest.mark.integration

TODAY = date.today()
OUTCOMES = Codec(CARD_OUTCOME_TYPES)


@dataclass
class CardHub:
    """The authority, its relay, the card consumer and the card relay, running."""

    settings: Settings
    auth: Authority
    consumer: ViewConsumer

    async def permit(self, name: str, *, months: int = 12, started_days_ago: int = 30) -> str:
        """An active permit of `name`, issued `started_days_ago` days ago."""
        start = TODAY - timedelta(days=started_days_ago)
        rec = await self.auth.apply(holder=holder(name=name), employer=employer(),
                                    category=Category.B, position="Engineer",
                                    approved_months=months, today=start - timedelta(days=20))
        await self.auth.issue(rec.permit_no, valid_from=start, today=start)
        return rec.permit_no

    async def legacy(self, name: str, permit_no: str, *, ends_in_days: int = 60) -> str:
        """A pre-integration physical permit, active, ending in `ends_in_days` days."""
        start = TODAY - timedelta(days=300)
        await self.auth.register_legacy(PermitRecord(
            permit_no=permit_no, status=PermitStatus.ACTIVE, standard=PermitStandard.LEGACY,
            holder=holder(name=name), category=Category.B, employer=employer(),
            position="Teacher", approved_months=24, issued_on=start, valid_from=start,
            valid_until=TODAY + timedelta(days=ends_in_days)))
        return permit_no

    async def sql(self, query: str, *args: Any) -> Any:
        """One value from the card database."""
        async with bootstrap.pool(self.settings, "card", max_size=1) as p:
            return await p.fetchval(query, *args)

    async def settled(self) -> bool:
        """Nothing waits in the card outbox (every outcome reached Kafka)."""
        return bool(await self.sql("SELECT count(*) = 0 FROM hub_outbox"))

    async def card_view(self, permit_no: str, column: str = "status") -> Any:
        """A column of the card service's copy of the permit."""
        return await self.sql(f"SELECT {column} FROM card_permits WHERE permit_no = $1", permit_no)


@pytest.fixture
async def card_hub(hub_settings: Settings, tmp_path: Path) -> AsyncIterator[CardHub]:
    """The card service's part of the hub, with its keys under this test's own home."""
    settings = with_home(hub_settings, tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        auth = await stack.enter_async_context(authority(settings))
        await stack.enter_async_context(bootstrap.running_relay(settings, "workpermit"))
        await stack.enter_async_context(bootstrap.running_relay(settings, "card"))
        consumer = await stack.enter_async_context(bootstrap.running_consumer(settings, "card"))
        yield CardHub(settings, auth, consumer)



async def submit(settings: Settings, events: Iterable[CloudEvent[Any]],
                 topic: str = topics.CARD_REQUESTS) -> int:
    """Publish as a front door does (the hub's one publish helper)."""
    return await publish(settings, topic, events,
                         signer=bootstrap.signing_key(settings, writer_of(topic)))


async def in_view(hub: CardHub, permit_no: str, column: str, value: Any) -> None:
    """Wait until the card view shows `value` in `column` for the permit."""
    async def check() -> bool:
        return bool(await hub.card_view(permit_no, column) == value)
    await eventually(check, what=f"card view {permit_no}.{column} == {value!r}")


async def outcomes(hub: CardHub, until: Any, what: str) -> list[Any]:
    """The card events published so far, once `until(events)` holds and the outbox is empty."""
    deadline = time.monotonic() + 60.0
    while True:
        if await hub.settled():
            records = await read_topic(hub.settings, hub.settings.topic(topics.CARD_EVENTS))
            events = [OUTCOMES.decode(r.value) for r in records]
            if until(events):
                return events
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


def for_request(events: Iterable[Any], request_id: uuid.UUID) -> list[Any]:
    """The outcomes answering one registration request."""
    return [e for e in events if isinstance(e, ECardIssued | ECardRejected)
            and e.data.request_id == request_id]


def ssn_issued(permit_no: str, ssn: str) -> SocialSecurityNumberIssued:
    event = SocialSecurityNumberIssued.create(
        subject=permit_no, sequence=1,
        data=SocialSecurityNumberIssuedData(permit_no=permit_no, ssn=ssn, issued_on=TODAY))
    assert isinstance(event, SocialSecurityNumberIssued)
    return event


async def register(hub: CardHub, name: str, **kw: Any) -> uuid.UUID:
    """Submit one registration request; return its request id."""
    event = registration_request(name, **kw)
    await submit(hub.settings, [event])
    return event.data.request_id


async def test_each_rejection_reason_reaches_the_card_events_topic(card_hub: CardHub) -> None:
    """Failed face check, name mismatch, cancelled, expired and legacy permits each get
    ECardRejected with their reason; a good request gets the card; a request naming an
    unknown permit or SSN waits for it (held, with its reason)."""
    hub = card_hub
    good = await hub.permit("Anna Schmidt")
    cancelled = await hub.permit("Kenji Sato")
    await hub.auth.cancel(cancelled, reason=CancellationReason.CONTRACT_ENDED, today=TODAY)
    expired = await hub.permit("Ngozi Okafor", months=6, started_days_ago=200)
    await hub.auth.expire(expired, today=TODAY)
    legacy = await hub.legacy("John Smith", "110000201900000001")
    for permit_no, status in ((good, "active"), (cancelled, "cancelled"),
                              (expired, "expired"), (legacy, "active")):
        await in_view(hub, permit_no, "status", status)

    # An unknown permit or SSN is held for HUB_CARD_HOLD_HOURS, then refused
    # (test_card_held_requests.py): here it is only seen waiting.
    unknown = {
        await register(hub, "Anna Schmidt", permit_no="156999999999999999"): "unknown_permit",
        await register(hub, "Anna Schmidt", ssn="SSN-NOBODY-1"): "unknown_ssn",
    }
    expected = {
        await register(hub, "Anna Schmidt", permit_no=good): "issued",
        await register(hub, "Anna Schmidt", permit_no=good, verified=False):
            "verification_failed",
        await register(hub, "Anna Schmit", permit_no=good): "name_mismatch",
        await register(hub, "Kenji Sato", permit_no=cancelled): "permit_cancelled",
        await register(hub, "Ngozi Okafor", permit_no=expired): "permit_expired",
        await register(hub, "John Smith", permit_no=legacy): "legacy_not_migrated",
    }
    events = await outcomes(hub, lambda es: all(for_request(es, r) for r in expected),
                            "an outcome for every request")
    got = {}
    for rid in expected:
        (answer,) = for_request(events, rid)
        got[rid] = "issued" if isinstance(answer, ECardIssued) else answer.data.reason.value
        if isinstance(answer, ECardRejected):
            assert answer.data.message
    assert got == expected
    assert not any(for_request(events, rid) for rid in unknown)
    waiting = sorted(f"{rid}:{reason}" for rid, reason in unknown.items())

    async def held() -> bool:
        rows = await hub.sql("SELECT array_agg(request_id || ':' || reason) FROM"
                             " hub_held_requests")
        return sorted(rows or []) == waiting

    await eventually(held, what="the unknown permit's and SSN's requests held")
    assert hub.consumer.stats.dead_lettered == 0


async def test_malformed_requests_are_dead_lettered_with_the_reason(card_hub: CardHub) -> None:
    """Missing fields, both identifiers and a mismatched subject go to the card DLQ as
    schema violations; the good request after them is still answered."""
    hub = card_hub
    good = await hub.permit("Anna Schmidt")
    template = json.loads(registration_request("Anna Schmidt", permit_no=good).to_json())

    def variant(change: Any) -> bytes:
        body = json.loads(json.dumps(template))
        change(body)
        return json.dumps(body).encode()

    bad = [
        variant(lambda b: b["data"].pop("name")),
        variant(lambda b: b["data"].update(ssn="SSN0000001")),
        variant(lambda b: b["data"]["verification"].pop("result")),
        b"{not json",
    ]
    topic = hub.settings.topic(topics.CARD_REQUESTS)
    async with bootstrap.producer(hub.settings, "bad-front-door",
                                  principal=writer_of(topics.CARD_REQUESTS)) as prod:
        for value in bad:
            await prod.send_and_wait(topic, key=good.encode(), value=value,
                                     headers=signed(hub.settings, topics.CARD_REQUESTS, value))
    await in_view(hub, good, "status", "active")
    rid = await register(hub, "Anna Schmidt", permit_no=good)
    await outcomes(hub, lambda es: for_request(es, rid), "the good request's outcome")

    dlq = await read_topic(hub.settings, topics.dead_letter_topic(hub.settings.topic("card")))
    reasons = sorted(dict(r.headers)["dlq.reason"].decode() for r in dlq)
    assert reasons == ["schema_violation"] * 3 + ["undecodable"]
    errors = " | ".join(dict(r.headers)["dlq.error.message"].decode() for r in dlq)
    assert "name" in errors
    assert "exactly one of permit_no or ssn" in errors


async def test_a_duplicated_request_yields_one_outcome_and_one_card(card_hub: CardHub) -> None:
    """The same event twice and the same request id in a new event: one ECardIssued; a new
    request for the same permit: already_registered, never a second card."""
    hub = card_hub
    permit_no = await hub.permit("Anna Schmidt")
    await in_view(hub, permit_no, "status", "active")
    first = registration_request("Anna Schmidt", permit_no=permit_no)
    resubmitted = registration_request("Anna Schmidt", permit_no=permit_no,
                                       request_id=first.data.request_id)
    await submit(hub.settings, [first, first, resubmitted])
    another = await register(hub, "Anna Schmidt", permit_no=permit_no)
    events = await outcomes(hub, lambda es: for_request(es, another), "the second request")

    assert len(for_request(events, first.data.request_id)) == 1
    (issued,) = [e for e in events if isinstance(e, ECardIssued)]
    (refused,) = for_request(events, another)
    assert refused.data.reason.value == "already_registered"
    assert issued.data.card_id in refused.data.message
    assert await hub.sql("SELECT count(*) FROM card_ecards") == 1
    assert [e.sequence for e in events] == [1, 2]  # per-subject sequence of the card service


async def test_the_legacy_line_from_both_sides(card_hub: CardHub) -> None:
    """Before the extension: no e-card (legacy_not_migrated), yet the SSN still gets its
    physical card. After PermitExtended: the e-card is issued, linked to that SSN."""
    hub = card_hub
    permit_no = await hub.legacy("John Smith", "110000201900000002", ends_in_days=60)
    await in_view(hub, permit_no, "standard", "legacy")
    before = await register(hub, "John Smith", permit_no=permit_no)
    await submit(hub.settings, [ssn_issued(permit_no, "SSN-LEGACY-1")],
                 topic=topics.INSURANCE_EVENTS)
    events = await outcomes(
        hub, lambda es: for_request(es, before) and any(isinstance(e, PhysicalCardIssued)
                                                        for e in es), "legacy outcomes")
    assert for_request(events, before)[0].data.reason.value == "legacy_not_migrated"
    physical = next(e for e in events if isinstance(e, PhysicalCardIssued))
    assert physical.data.ecard_id is None

    await hub.auth.extend(permit_no, new_valid_until=TODAY + timedelta(days=425), today=TODAY)
    await in_view(hub, permit_no, "standard", "integrated")
    after = await register(hub, "John Smith", permit_no=permit_no)
    events = await outcomes(hub, lambda es: for_request(es, after), "the post-extension request")
    (issued,) = for_request(events, after)
    assert isinstance(issued, ECardIssued)
    assert issued.data.permit.standard is PermitStandard.INTEGRATED
    assert issued.data.ssn == "SSN-LEGACY-1"
    assert await hub.sql("SELECT ecard_id FROM card_physical_cards WHERE permit_no = $1",
                         permit_no) == issued.data.card_id


async def test_an_ssn_gives_one_physical_card_linked_to_the_ecard(card_hub: CardHub) -> None:
    """SocialSecurityNumberIssued → PhysicalCardIssued linked to the e-card; the same SSN
    again issues nothing; a second SSN for the permit is dead-lettered, not a second card."""
    hub = card_hub
    permit_no = await hub.permit("Anna Schmidt")
    await in_view(hub, permit_no, "status", "active")
    rid = await register(hub, "Anna Schmidt", permit_no=permit_no)
    events = await outcomes(hub, lambda es: for_request(es, rid), "the e-card")
    card_id = for_request(events, rid)[0].data.card_id

    ssn = ssn_issued(permit_no, "SSN-0000042")
    await submit(hub.settings, [ssn, ssn, ssn_issued(permit_no, "SSN-0000042"),
                                ssn_issued(permit_no, "SSN-0000043")],
                 topic=topics.INSURANCE_EVENTS)
    await eventually(lambda: _dead_lettered(hub, 1), what="the conflicting SSN's dead letter")
    events = await outcomes(hub, lambda es: any(isinstance(e, PhysicalCardIssued) for e in es),
                            "the physical card")
    (physical,) = [e for e in events if isinstance(e, PhysicalCardIssued)]
    assert (physical.data.ssn, physical.data.ecard_id) == ("SSN-0000042", card_id)
    assert await hub.sql("SELECT ssn FROM card_ecards WHERE permit_no = $1", permit_no) == \
        "SSN-0000042"
    dlq = await read_topic(hub.settings, topics.dead_letter_topic(hub.settings.topic("card")))
    (dead,) = dlq
    assert dict(dead.headers)["dlq.reason"] == b"handler_error"
    assert b"another SSN" in dict(dead.headers)["dlq.error.message"]


async def _dead_lettered(hub: CardHub, count: int) -> bool:
    return hub.consumer.stats.dead_lettered >= count


async def test_holders_are_notified_of_changes_and_of_the_coming_end(card_hub: CardHub) -> None:
    """A change of a carded permit → a status_changed notice; the daily sweeps → an expiry
    reminder when the extension window opens (90 days left) and before it closes (45), each
    naming the last day to apply, then one too-late notice (29): not before, not twice."""
    hub = card_hub
    permit_no = await hub.permit("Anna Schmidt", months=12, started_days_ago=200)
    await in_view(hub, permit_no, "status", "active")
    valid_until = await hub.card_view(permit_no, "valid_until")
    rid = await register(hub, "Anna Schmidt", permit_no=permit_no)
    await outcomes(hub, lambda es: for_request(es, rid), "the e-card")
    await hub.auth.change(permit_no, position="Lead engineer")
    handled = 2  # the registration and the change
    # Sweeps are keyed by day, so they may be applied in any order: send one at a time.
    for days_left in (91, 90, 89, 46, 45, 44, 30, 29, 28):
        await submit(hub.settings, [sweep_request(valid_until - timedelta(days=days_left))])
        handled += 1
        await eventually(lambda n=handled: _handled(hub, n), what=f"the {days_left}-day sweep")

    events = await outcomes(hub, lambda es: True, "all notices")
    notices = [e for e in events if isinstance(e, PermitNotificationSent)]
    (status,) = [n for n in notices if n.data.kind is NotificationKind.STATUS_CHANGED]
    assert status.data.trigger == "PermitChanged"
    reminders = [n.data for n in notices if n.data.kind is NotificationKind.EXPIRY_REMINDER]
    assert [(r.trigger, r.valid_until) for r in reminders] == [
        ("ExpiryReminderSweepRequested", valid_until)] * 3
    opened, closing, late = sorted(reminders, key=lambda r: -(r.days_left or 0))
    assert (opened.days_left, closing.days_left, late.days_left) == (90, 45, 29)
    apply_by = valid_until - timedelta(days=30)
    assert f"until {apply_by}" in opened.message
    assert f"by {apply_by}" in closing.message
    assert "too late to extend" in late.message
    keys = await hub.sql("SELECT array_agg(dedup_key ORDER BY dedup_key) FROM card_notifications"
                         " WHERE permit_no = $1 AND kind = 'expiry_reminder'", permit_no)
    assert keys == [f"{k}:{valid_until}" for k in ("expiry-closing", "expiry-late", "expiry-open")]


async def _handled(hub: CardHub, count: int) -> bool:
    """At least `count` events reached a card handler."""
    return bool(await hub.sql("SELECT count(*) >= $1 FROM hub_handled_events", count))
