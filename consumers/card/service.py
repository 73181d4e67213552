"""The Social Security Card service's declaration and wiring: its only Kafka-aware module.

The card group consumes three topics: the permit lifecycle (its view of the permits),
`card.requests.v1` (e-card registrations, the daily reminder sweep) and
`socialinsurance.insurance-events.v1` (SocialSecurityNumberIssued, and InsuranceRegistered
for the SSN a registration under a new permit reuses). Its outcomes go to
`card.card-events.v1` through the card database's outbox, relayed by `hub run card`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta

import typer

from consumers.card import expectations, handlers
from consumers.card.issuer import TOKEN_KEY, QrIssuer
from consumers.card.settings import CardSettings
from consumers.card.views import PERMITS, CardView
from hub.agency import Agency, Channel, CommandContext, PermitView
from hub.db import Connection
from hub.delivery import BatchHandler, Delivery
from hub.dispatch import Router
from hub.retention import Expiring, Forget, Kept, Retention
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, topics
from schemas.card import (
    CARD_OUTCOME_TYPES,
    CARD_REQUEST_TYPES,
    ECardRegistrationRequested,
    ExpiryReminderSweepRequested,
)
from schemas.permits import (
    NotificationLetterIssued,
    NotificationLetterLapsed,
    PermitCancelled,
    PermitChanged,
    PermitExpired,
    PermitExtended,
    PermitIssued,
    PermitMigrated,
)
from schemas.registry import ALL_EVENT_TYPES
from schemas.social_insurance import InsuranceRegistered, SocialSecurityNumberIssued

NOTIFIED_PERMIT_EVENTS = (
    PermitIssued, PermitExtended, PermitChanged, PermitCancelled, PermitExpired, PermitMigrated,
    NotificationLetterLapsed, NotificationLetterIssued,
)
"""Permit events an e-card holder is told about. A permit's first letter finds no e-card
(none exists before it): only the letter of a new period under the holder's number, after
the permit ended, reaches a holder whose e-card is valid again."""


def router(
    settings: Settings, issuer: QrIssuer, own: CardSettings | None = None
) -> Router[CardView]:
    """What the agency does with each event type it consumes, except the notifications."""
    own = own or CardSettings()
    closing_days = own.closing_reminder_days
    r: Router[CardView] = Router(
        outcome_topic=settings.topic(topics.CARD_EVENTS), view_factory=CardView
    )
    r.project(PERMIT_EVENT_TYPES, PERMITS, handlers.card_permit)
    # A registration naming a permit or SSN not known yet waits for it (handlers.register_ecard):
    # a permit event releases its number (its subject), an SSN's events release the SSN.
    # The same request id and data get the same answer again (on_request).
    r.on_request(ECardRegistrationRequested, functools.partial(
        handlers.register_ecard, issuer=issuer, closing_days=closing_days),
        request_id=lambda e: str(e.data.request_id))
    r.hold_for(ECardRegistrationRequested, timedelta(hours=own.hold_hours))
    r.releases(SocialSecurityNumberIssued, lambda e: (e.data.ssn,))
    r.releases(InsuranceRegistered, lambda e: (e.data.ssn,))
    r.on(SocialSecurityNumberIssued, handlers.issue_physical_card)
    r.on(InsuranceRegistered, handlers.link_registered_ssn)
    r.on(ExpiryReminderSweepRequested, functools.partial(
        handlers.send_expiry_reminders, closing_days=closing_days))
    return r


def notification_router(settings: Settings, own: CardSettings | None = None) -> Router[CardView]:
    """Status-change notifications to e-card holders."""
    notify = functools.partial(handlers.notify_permit_change,
                               closing_days=(own or CardSettings()).closing_reminder_days)
    r: Router[CardView] = Router(
        outcome_topic=settings.topic(topics.CARD_EVENTS), view_factory=CardView
    )
    for event_type in NOTIFIED_PERMIT_EVENTS:
        r.on(event_type, notify)
    return r


def batch_handler(
    settings: Settings, issuer: QrIssuer, own: CardSettings | None = None
) -> BatchHandler:
    """The card group's batch: the router first, then notices for permits with an e-card.

    Permit events are projected in bulk (the view's fast path); only the few that concern
    an e-card holder go through the notification handler, after the batch's projections.
    """
    own = own or CardSettings()
    decisions = router(settings, issuer, own)
    notices = notification_router(settings, own)
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


def build(settings: Settings) -> BatchHandler:
    """The card group's batch handler, signing QR tokens with the active `card-qr` key, with
    its own settings read now."""
    return batch_handler(settings, QrIssuer.configured(settings), CardSettings())


def _commands(context: CommandContext) -> Sequence[tuple[str, typer.Typer]]:
    from consumers.card.cli import commands  # the CLI loads only when commands are mounted

    return commands(context)


AGENCY = Agency(
    name="card",
    title="Social Security Card service",
    package="consumers.card",
    # Per audience: ECardIssued carries the holder's live QR token, which no agency reading
    # the outcomes verifies; in full for the front door, which answers the holder's app
    # (docs/privacy.md §2).
    publishes=Channel(topics.CARD_EVENTS, CARD_OUTCOME_TYPES,
                      "The card service's outcomes, from its outbox.", per_audience=True,
                      front_door_reads=True),
    requests=Channel(topics.CARD_REQUESTS, CARD_REQUEST_TYPES,
                     "Requests to the Social Security Card service: e-card registrations from "
                     "the e-SSC app and the scheduler's daily expiry-reminder sweep."),
    reads=(topics.PERMIT_EVENTS, topics.CARD_REQUESTS, topics.INSURANCE_EVENTS),
    # Every type of the contract: the group reads shared topics (the insurance events) whose
    # other types it ignores; a type the contract does not know is dead-lettered.
    accepts=tuple(dict.fromkeys(
        (*PERMIT_EVENT_TYPES, *CARD_REQUEST_TYPES, SocialSecurityNumberIssued,
         InsuranceRegistered, *ALL_EVENT_TYPES))),
    view=PermitView(PERMITS, handlers.card_permit),
    build=build,
    expectations=expectations.reads(),
    commands=_commands,
    settings=CardSettings,
    token_keys=(TOKEN_KEY,),
    retention=Retention(
        # The card view holds no cancellation day: the day it applied the cancellation (or
        # the permit's end of validity, if earlier) is the closest it knows.
        cancelled_on="LEAST(valid_until, applied_at::date)",
        expiring=(Expiring("card_qr_tokens", "expires_at",
                           "a token is refused after it expired; its row links a permit to a"
                           " card and the times the holder showed it"),),
        forget=(
            Forget("card_ecards", "the e-card of an ended permit is void; holds the SSN"),
            Forget("card_notifications", "notices already sent about the permit"),
            Forget("card_qr_tokens", "tokens of the permit, whatever their expiry"),
        ),
        kept=(
            Kept("card_physical_cards", "the person's social security card outlives the"
                 " permit it was issued under"),
            Kept("card_requests", "each request id answered once (idempotency): ids, outcome,"
                 " reason, the permit number"),
        ),
    ),
)
"""The card service, as the hub's registry finds it (entry point `permit_hub.agencies`)."""
