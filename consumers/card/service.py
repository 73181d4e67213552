"""Wiring of the Social Security Card service to Kafka: its only Kafka-aware module.

The card group consumes three topics: the permit lifecycle (its view of the permits),
`card.requests.v1` (e-card registrations, the daily reminder sweep) and
`socialinsurance.insurance-events.v1` (SocialSecurityNumberIssued). Its outcomes go to
`card.card-events.v1` through the card database's outbox: run `running_relay(settings,
"card")` beside the consumer so they reach Kafka.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from typing import Any

from consumers.card import handlers
from consumers.card.issuer import QrIssuer
from consumers.card.views import DDL, PERMITS, CardView
from hub.consumer import BatchHandler, ConsumerSpec, Delivery
from hub.db import RUNTIME_DDL, Connection
from hub.dispatch import DISPATCH_DDL, Router
from hub.kafka import Producer
from hub.outbox import OUTBOX_DDL
from hub.settings import Settings
from schemas import CONTENT_TYPE, PERMIT_EVENT_TYPES, CloudEvent, Codec, topics
from schemas.card import (
    CARD_REQUEST_TYPES,
    ECardRegistrationRequested,
    ExpiryReminderSweepRequested,
)
from schemas.permits import (
    PermitCancelled,
    PermitChanged,
    PermitExpired,
    PermitExtended,
    PermitIssued,
    PermitMigrated,
)
from schemas.registry import ALL_EVENT_TYPES
from schemas.social_insurance import SocialSecurityNumberIssued

AGENCY = "card"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, DDL)

NOTIFIED_PERMIT_EVENTS = (
    PermitIssued, PermitExtended, PermitChanged, PermitCancelled, PermitExpired, PermitMigrated,
)
"""Permit events an e-card holder is told about (the first events of a permit cannot be:
no e-card exists before them)."""


def router(settings: Settings, issuer: QrIssuer) -> Router[CardView]:
    """What the agency does with each event type it consumes, except the notifications."""
    r: Router[CardView] = Router(
        outcome_topic=settings.topic(topics.CARD_EVENTS), view_factory=CardView
    )
    r.project(PERMIT_EVENT_TYPES, PERMITS, handlers.card_permit)
    r.on(ECardRegistrationRequested, functools.partial(handlers.register_ecard, issuer=issuer))
    r.on(SocialSecurityNumberIssued, handlers.issue_physical_card)
    r.on(ExpiryReminderSweepRequested, handlers.send_expiry_reminders)
    return r


def notification_router(settings: Settings) -> Router[CardView]:
    """Status-change notifications to e-card holders."""
    r: Router[CardView] = Router(
        outcome_topic=settings.topic(topics.CARD_EVENTS), view_factory=CardView
    )
    for event_type in NOTIFIED_PERMIT_EVENTS:
        r.on(event_type, handlers.notify_permit_change)
    return r


def batch_handler(settings: Settings, issuer: QrIssuer) -> BatchHandler:
    """The card group's batch: the router first, then notices for permits with an e-card.

    Permit events are projected in bulk (the view's fast path); only the few that concern
    an e-card holder go through the notification handler, after the batch's projections.
    """
    decisions = router(settings, issuer)
    notices = notification_router(settings)
    notified = {t.EVENT_TYPE for t in NOTIFIED_PERMIT_EVENTS}

    async def apply(conn: Connection, deliveries: Sequence[Delivery]) -> None:
        await decisions.apply(conn, deliveries)
        changes = [d for d in deliveries if d.event.type in notified]
        if not changes:
            return
        carded = await CardView(conn).with_ecards({d.event.subject for d in changes})
        todo = [d for d in changes if d.event.subject in carded]
        if todo:
            await notices.apply(conn, todo)

    return apply


def codec() -> Codec:
    """Every type of the contract: the group reads shared topics (the insurance events)
    whose other types it ignores; a type the contract does not know is dead-lettered."""
    types: dict[type[CloudEvent[Any]], None] = dict.fromkeys(
        (*PERMIT_EVENT_TYPES, *CARD_REQUEST_TYPES, SocialSecurityNumberIssued, *ALL_EVENT_TYPES)
    )
    return Codec(types)


def consumer_spec(settings: Settings, issuer: QrIssuer | None = None) -> ConsumerSpec:
    """The card service's consumer group: its topics, codec and batch handler."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(
            settings.topic(topics.PERMIT_EVENTS),
            settings.topic(topics.CARD_REQUESTS),
            settings.topic(topics.INSURANCE_EVENTS),
        ),
        codec=codec(),
        apply=batch_handler(settings, issuer or QrIssuer.at_home(settings.home)),
        dead_letter_topic=topics.dead_letter_topic(group),
    )


async def submit(settings: Settings, events: Iterable[CloudEvent[Any]],
                 topic: str = topics.CARD_REQUESTS) -> int:
    """Publish requests as a front door would (keyed by subject); return how many."""
    headers = [("content-type", CONTENT_TYPE.encode())]
    prod = Producer(settings.bootstrap, client_id="card-front-door")
    await prod.start()
    try:
        futures = [
            await prod.send(settings.topic(topic), key=e.subject.encode(), value=e.to_json(),
                            headers=headers)
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await prod.stop()
    return len(futures)
