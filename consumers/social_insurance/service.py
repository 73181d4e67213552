"""Wiring of the social insurance agency to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from consumers.social_insurance.views import DDL, PERMITS, SocialInsuranceView
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.dispatch import DISPATCH_DDL, Emit, Router
from hub.outbox import OUTBOX_DDL
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics
from schemas.card import CARD_OUTCOME_TYPES, ECardIssued
from schemas.permits import NotificationLetterIssued, PermitCancelled, PermitChanged, PermitExpired
from schemas.social_insurance import (
    SOCIAL_INSURANCE_REQUEST_TYPES,
    InsuranceRegistrationRequested,
)

AGENCY = "social_insurance"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, DDL)


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


def consumer_spec(
    settings: Settings, own: SocialInsuranceSettings | None = None
) -> ConsumerSpec:
    """The social insurance consumer group: permits, e-cards and registration requests."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),
                settings.topic(topics.CARD_EVENTS),
                settings.topic(topics.SOCIAL_INSURANCE_REQUESTS)),
        # Every type the card topic carries is known, so those it ignores are not dead letters.
        codec=Codec((*PERMIT_EVENT_TYPES, *CARD_OUTCOME_TYPES, *SOCIAL_INSURANCE_REQUEST_TYPES)),
        apply=router(settings, own).batch_handler(),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
