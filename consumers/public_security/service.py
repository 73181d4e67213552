"""Public security's (entry-exit) declaration and wiring: the agency's only Kafka-aware module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import typer

from consumers.public_security import expectations
from consumers.public_security.handlers import (
    Policy,
    checked_permit,
    on_application,
    on_application_decision,
    on_cancellation_decision,
    on_permit_cancelled,
    on_permit_changed,
    on_permit_extended,
)
from consumers.public_security.settings import PublicSecuritySettings
from consumers.public_security.tokens import PublishedKeys, token_check
from consumers.public_security.views import PERMITS, PublicSecurityView
from hub.agency import Agency, Channel, CommandContext, PermitView
from hub.delivery import BatchHandler
from hub.dispatch import Emit, Hold, Received, Router
from hub.retention import Expiring, Forget, Kept, Retention
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, topics
from schemas.permit_token import published_keys_file
from schemas.permits import PermitCancelled, PermitChanged, PermitExtended
from schemas.public_security import (
    PUBLIC_SECURITY_DECISION_TYPES,
    PUBLIC_SECURITY_REQUEST_TYPES,
    RESIDENCE_EVENT_TYPES,
    ResidenceApplicationDecided,
    ResidencePermitApplied,
    ResidencePermitCancellationDecided,
)


def policy(settings: Settings, own: PublicSecuritySettings | None = None) -> Policy:
    """The handlers' policy: the QR signer's keys in the key registry and the configured
    deadlines."""
    own = own or PublicSecuritySettings()
    keys = PublishedKeys(published_keys_file(settings.keys_registry))
    return Policy(
        check_token=token_check(keys.current, timedelta(seconds=own.token_leeway_seconds)),
        cancellation_deadline_days=own.cancellation_deadline_days,
    )


def router(
    settings: Settings, own: PublicSecuritySettings | None = None
) -> Router[PublicSecurityView]:
    """What the agency does with each event type it consumes."""
    own_settings = own or PublicSecuritySettings()
    p = policy(settings, own_settings)
    r: Router[PublicSecurityView] = Router(
        outcome_topic=settings.topic(topics.RESIDENCE_EVENTS), view_factory=PublicSecurityView
    )
    r.project(PERMIT_EVENT_TYPES, PERMITS, checked_permit)

    async def application(
        event: Any, view: PublicSecurityView, received: Received
    ) -> Sequence[Emit] | Hold:
        # Held while the permit is unknown, until its hold period ends (`final`): then
        # refused as permit_unknown. A held one is checked against when it first arrived.
        return await on_application(event, view, p, received_at=received.at,
                                    may_hold=not received.final,
                                    held_since=received.held_since)

    async def cancelled(event: Any, view: PublicSecurityView) -> Sequence[Emit]:
        return await on_permit_cancelled(event, view, p)

    # scan time vs. the record's time; one answer per application id (a resubmission with
    # the same data gets it again); an early one waits for its permit's events (hold_hours).
    r.on_request(ResidencePermitApplied, application,
                 request_id=lambda e: e.data.application_id)
    r.hold_for(ResidencePermitApplied, timedelta(hours=own_settings.hold_hours))
    r.on(PermitCancelled, cancelled)
    r.on(PermitExtended, on_permit_extended)
    r.on(PermitChanged, on_permit_changed)
    r.on(ResidenceApplicationDecided, on_application_decision)
    r.on(ResidencePermitCancellationDecided, on_cancellation_decision)
    r.prefetch(_residences_ahead)
    return r


_READ_RESIDENCE = frozenset(t.EVENT_TYPE for t in (PermitCancelled, PermitExtended, PermitChanged))
"""The permit events whose handlers read the residence permit on their work permit."""


async def _residences_ahead(view: PublicSecurityView, events: Sequence[Any]) -> None:
    """The residence permits the batch's permit events will look at, read in one statement."""
    permit_nos = [e.data.permit.permit_no for e in events if e.type in _READ_RESIDENCE]
    if permit_nos:
        await view.read_residences(permit_nos)


def _commands(context: CommandContext) -> Sequence[tuple[str, typer.Typer]]:
    from consumers.public_security.cli import commands  # loads only when commands are mounted

    return commands(context)


def build(settings: Settings) -> BatchHandler:
    """Public security's batch handler, with its own settings read now."""
    return router(settings, PublicSecuritySettings()).batch_handler()


AGENCY = Agency(
    name="public_security",
    title="Public security (entry-exit administration)",
    package="consumers.public_security",
    publishes=Channel(topics.RESIDENCE_EVENTS, RESIDENCE_EVENT_TYPES,
                      "Public security's decisions on residence permits, from its outbox."),
    requests=Channel(topics.PUBLIC_SECURITY_REQUESTS, PUBLIC_SECURITY_REQUEST_TYPES,
                     "Residence-permit applications from the entry-exit counter system."),
    decisions=Channel(topics.PUBLIC_SECURITY_DECISIONS, PUBLIC_SECURITY_DECISION_TYPES,
                      "Officers' decisions: on a referred application, closing a cancellation"
                      " case."),
    reads=(topics.PERMIT_EVENTS, topics.PUBLIC_SECURITY_REQUESTS,
           topics.PUBLIC_SECURITY_DECISIONS),
    accepts=(*PERMIT_EVENT_TYPES, *PUBLIC_SECURITY_REQUEST_TYPES,
             *PUBLIC_SECURITY_DECISION_TYPES),
    view=PermitView(PERMITS, checked_permit),
    build=build,
    expectations=expectations.reads(),
    settings=PublicSecuritySettings,
    commands=_commands,
    retention=Retention(
        expiring=(Expiring("ps_accepted_tokens", "expires_at",
                           "a token is refused after it expired (plus the leeway), so its"
                           " digest no longer guards against reuse"),),
        forget=(
            Forget("ps_applications", "the decision stays as the legal record; the entry date"
                   " and the text sent to the applicant go", columns=("entry_date", "message")),
            Forget("ps_accepted_tokens", "tokens shown for the permit, whatever their expiry",
                   match="application_id IN (SELECT application_id FROM ps_applications"
                   " WHERE permit_no = ANY($1))"),
        ),
        kept=(
            Kept("ps_officer_decisions", "who decided what, when and why: the legal record of"
                 " the officers' decisions; a staff id and a reason without personal data"),
            Kept("ps_residence_permits", "the residence permit's legal history (numbers,"
                 " dates, status); no name or passport"),
        ),
    ),
)
"""Public security, as the hub's registry finds it (entry point `permit_hub.agencies`)."""
