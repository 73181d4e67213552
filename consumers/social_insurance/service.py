"""The social insurance agency's declaration and wiring: the agency's only Kafka-aware module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from consumers.social_insurance import expectations
from consumers.social_insurance.agreements import load_agreements
from consumers.social_insurance.handlers import (
    Policy,
    on_ecard_issued,
    on_letter_issued,
    on_permit_cancelled,
    on_permit_changed,
    on_permit_expired,
    on_registration_requested,
    on_review_decided,
    permit_row,
)
from consumers.social_insurance.identity import PersonKeys
from consumers.social_insurance.pepper import load_person_keys
from consumers.social_insurance.settings import SocialInsuranceSettings
from consumers.social_insurance.views import PERMITS, SocialInsuranceView
from hub.agency import Agency, Channel, CommandContext, PermitView
from hub.delivery import BatchHandler
from hub.dispatch import Emit, Hold, Received, Router
from hub.retention import Forget, Kept, Retention
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, topics
from schemas.card import CARD_OUTCOME_TYPES, ECardIssued
from schemas.permits import NotificationLetterIssued, PermitCancelled, PermitChanged, PermitExpired
from schemas.social_insurance import (
    INSURANCE_EVENT_TYPES,
    SOCIAL_INSURANCE_DECISION_TYPES,
    SOCIAL_INSURANCE_REQUEST_TYPES,
    InsuranceRegistrationRequested,
    InsuranceReviewDecided,
)


def person_keys(settings: Settings, own: SocialInsuranceSettings | None = None) -> PersonKeys:
    """The person keys under this deployment's pepper, loaded (and checked) now."""
    own = own or SocialInsuranceSettings()
    return load_person_keys(own.pepper_path(settings))


def secret_files(settings: Settings) -> list[Path]:
    """The agency's own secrets, which `hub init` makes: the person-key pepper."""
    return [SocialInsuranceSettings().pepper_path(settings)]


def policy(settings: Settings, own: SocialInsuranceSettings | None = None) -> Policy:
    """The handlers' policy: the agreements table and the pepper, loaded (and checked) now."""
    own = own or SocialInsuranceSettings()
    return Policy(agreements=load_agreements(own.agreements_file),
                  keys=person_keys(settings, own), hold=timedelta(hours=own.hold_hours))


def router(
    settings: Settings, own: SocialInsuranceSettings | None = None
) -> Router[SocialInsuranceView]:
    """What the agency does with each event type it consumes."""
    p = policy(settings, own)
    r: Router[SocialInsuranceView] = Router(
        outcome_topic=settings.topic(topics.INSURANCE_EVENTS), view_factory=SocialInsuranceView
    )
    r.project(PERMIT_EVENT_TYPES, PERMITS, permit_row(p.keys))

    async def requested(
        event: Any, view: SocialInsuranceView, received: Received
    ) -> Sequence[Emit] | Hold:
        return await on_registration_requested(event, view, p, received)

    async def changed(event: Any, view: SocialInsuranceView) -> Sequence[Emit]:
        return await on_permit_changed(event, view, p)

    async def reviewed(event: Any, view: SocialInsuranceView) -> Sequence[Emit]:
        return await on_review_decided(event, view, p)

    # Early requests wait for what they name; one request id, one answer.
    r.on_request(InsuranceRegistrationRequested, requested,
                 request_id=lambda e: e.data.request_id)
    r.hold_for(InsuranceRegistrationRequested, p.hold)
    r.releases(NotificationLetterIssued, lambda e: [e.data.letter_no])
    r.releases(ECardIssued, lambda e: [e.data.card_id])
    r.on(InsuranceReviewDecided, reviewed)
    r.on(NotificationLetterIssued, on_letter_issued)
    r.on(ECardIssued, on_ecard_issued)
    r.on(PermitCancelled, on_permit_cancelled)
    r.on(PermitExpired, on_permit_expired)
    r.on(PermitChanged, changed)
    r.prefetch(_in_force_ahead)
    r.finish(SocialInsuranceView.flush)
    return r


_SUSPENDING = frozenset(t.EVENT_TYPE for t in (PermitCancelled, PermitExpired))


def _reads_in_force(event: Any) -> bool:
    """Whether this permit event's handler looks at the permit's registration in force."""
    if event.type in _SUSPENDING:
        return True
    return event.type == PermitChanged.EVENT_TYPE and any(
        c.field == "holder.passport_no" for c in event.data.changes)


async def _in_force_ahead(view: SocialInsuranceView, events: Sequence[Any]) -> None:
    """The registrations in force the batch's permit events will look at, in one statement."""
    permit_nos = [e.data.permit.permit_no for e in events if _reads_in_force(e)]
    if permit_nos:
        await view.read_in_force(permit_nos)


def _commands(context: CommandContext) -> Sequence[tuple[str, typer.Typer]]:
    from consumers.social_insurance.cli import commands  # loads only when commands are mounted

    return commands(context)


def build(settings: Settings) -> BatchHandler:
    """Social insurance's batch handler, with its agreements table and pepper loaded now."""
    return router(settings, SocialInsuranceSettings()).batch_handler()


AGENCY = Agency(
    name="social_insurance",
    title="Social insurance agency",
    package="consumers.social_insurance",
    publishes=Channel(topics.INSURANCE_EVENTS, INSURANCE_EVENT_TYPES,
                      "The social insurance agency's outcomes, from its outbox."),
    requests=Channel(topics.SOCIAL_INSURANCE_REQUESTS, SOCIAL_INSURANCE_REQUEST_TYPES,
                     "Insurance registration requests from the social insurance front door."),
    decisions=Channel(topics.SOCIAL_INSURANCE_DECISIONS, SOCIAL_INSURANCE_DECISION_TYPES,
                      "Reviewers' decisions on referred registrations, from the agency's desk"
                      " (`hub social_insurance decide`)."),
    reads=(topics.PERMIT_EVENTS, topics.CARD_EVENTS, topics.SOCIAL_INSURANCE_REQUESTS,
           topics.SOCIAL_INSURANCE_DECISIONS),
    # Every type the card topic carries is known, so those it ignores are not dead letters.
    accepts=(*PERMIT_EVENT_TYPES, *CARD_OUTCOME_TYPES, *SOCIAL_INSURANCE_REQUEST_TYPES,
             *SOCIAL_INSURANCE_DECISION_TYPES),
    view=PermitView(PERMITS, bind=lambda settings: permit_row(person_keys(settings))),
    build=build,
    commands=_commands,
    expectations=expectations.reads(),
    settings=SocialInsuranceSettings,
    secret_files=secret_files,
    retention=Retention(
        # si_permits holds no cancellation day: the day the cancellation was applied.
        cancelled_on="LEAST(valid_until, applied_at::date)",
        forget=(
            Forget("si_letters", "only resolves a notification letter to the permit"),
            Forget("si_ecards", "only resolves an e-card to the permit"),
            Forget("si_requests", "the decision stays as the legal record; the text sent to"
                   " the requester goes", columns=("message",)),
        ),
        kept=(
            Kept("si_accounts", "the person's insurance account outlives the permit"),
            Kept("si_registrations", "insured periods: the basis of the person's benefits"),
            Kept("si_person_keys", "keyed digests naming the account (section 6)"),
            Kept("si_reviews", "the reviewer's decision: the legal record of the request's"
                 " outcome (a staff id and a ground, no personal data)"),
        ),
    ),
)
"""Social insurance, as the hub's registry finds it (entry point `permit_hub.agencies`)."""
