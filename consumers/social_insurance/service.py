"""The social insurance agency's declaration and wiring: the agency's only Kafka-aware module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consumers.social_insurance import expectations
from consumers.social_insurance.agreements import load_agreements
from consumers.social_insurance.handlers import (
    Policy,
    insured_permit,
    on_ecard_issued,
    on_letter_issued,
    on_permit_cancelled,
    on_permit_changed,
    on_permit_expired,
    on_registration_requested,
)
from consumers.social_insurance.settings import SocialInsuranceSettings
from consumers.social_insurance.views import PERMITS, SocialInsuranceView
from hub.agency import Agency, Channel, PermitView
from hub.delivery import BatchHandler
from hub.dispatch import Emit, Router
from hub.retention import Forget, Kept, Retention
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, topics
from schemas.card import CARD_OUTCOME_TYPES, ECardIssued
from schemas.permits import NotificationLetterIssued, PermitCancelled, PermitChanged, PermitExpired
from schemas.social_insurance import (
    INSURANCE_EVENT_TYPES,
    SOCIAL_INSURANCE_REQUEST_TYPES,
    InsuranceRegistrationRequested,
)


def policy(own: SocialInsuranceSettings | None = None) -> Policy:
    """The handlers' policy: the agreements table, loaded (and validated) now."""
    own = own or SocialInsuranceSettings()
    return Policy(agreements=load_agreements(own.agreements_file))


def router(
    settings: Settings, own: SocialInsuranceSettings | None = None
) -> Router[SocialInsuranceView]:
    """What the agency does with each event type it consumes."""
    p = policy(own)
    r: Router[SocialInsuranceView] = Router(
        outcome_topic=settings.topic(topics.INSURANCE_EVENTS), view_factory=SocialInsuranceView
    )
    r.project(PERMIT_EVENT_TYPES, PERMITS, insured_permit)

    async def requested(event: Any, view: SocialInsuranceView) -> Sequence[Emit]:
        return await on_registration_requested(event, view, p)

    r.on(InsuranceRegistrationRequested, requested)
    r.on(NotificationLetterIssued, on_letter_issued)
    r.on(ECardIssued, on_ecard_issued)
    r.on(PermitCancelled, on_permit_cancelled)
    r.on(PermitExpired, on_permit_expired)
    r.on(PermitChanged, on_permit_changed)
    return r


def build(settings: Settings) -> BatchHandler:
    """Social insurance's batch handler, with its agreements table loaded now."""
    return router(settings, SocialInsuranceSettings()).batch_handler()


AGENCY = Agency(
    name="social_insurance",
    title="Social insurance agency",
    package="consumers.social_insurance",
    publishes=Channel(topics.INSURANCE_EVENTS, INSURANCE_EVENT_TYPES,
                      "The social insurance agency's outcomes, from its outbox."),
    requests=Channel(topics.SOCIAL_INSURANCE_REQUESTS, SOCIAL_INSURANCE_REQUEST_TYPES,
                     "Insurance registration requests from the social insurance front door."),
    reads=(topics.PERMIT_EVENTS, topics.CARD_EVENTS, topics.SOCIAL_INSURANCE_REQUESTS),
    # Every type the card topic carries is known, so those it ignores are not dead letters.
    accepts=(*PERMIT_EVENT_TYPES, *CARD_OUTCOME_TYPES, *SOCIAL_INSURANCE_REQUEST_TYPES),
    view=PermitView(PERMITS, insured_permit),
    build=build,
    expectations=expectations.reads(),
    settings=SocialInsuranceSettings,
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
            Kept("si_person_keys", "hashed keys naming the account (section 6)"),
        ),
    ),
)
"""Social insurance, as the hub's registry finds it (entry point `permit_hub.agencies`)."""
