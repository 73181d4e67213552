"""Wiring of the social insurance to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from consumers.social_insurance.handlers import insured_permit
from consumers.social_insurance.views import DDL, PERMITS, SocialInsuranceView
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.dispatch import DISPATCH_DDL, Router
from hub.outbox import OUTBOX_DDL
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics

AGENCY = "social_insurance"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, DDL)


def router(settings: Settings) -> Router[SocialInsuranceView]:
    """What the agency does with each event type it consumes."""
    r: Router[SocialInsuranceView] = Router(outcome_topic=settings.topic(topics.INSURANCE_EVENTS), view_factory=SocialInsuranceView)
    r.project(PERMIT_EVENT_TYPES, PERMITS, insured_permit)
    return r


def consumer_spec(settings: Settings) -> ConsumerSpec:
    """The social insurance consumer group: its topics, codec and handlers."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),),
        codec=Codec(PERMIT_EVENT_TYPES),
        apply=router(settings).batch_handler(),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
