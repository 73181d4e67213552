"""Wiring of the social insurance service to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from consumers.social_insurance.handlers import insured_permit
from consumers.social_insurance.views import DDL, PERMITS
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.outbox import OUTBOX_DDL
from hub.projection import projection
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics

AGENCY = "social_insurance"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DDL)


def consumer_spec(settings: Settings) -> ConsumerSpec:
    """The social insurance consumer group: the permit lifecycle into its view."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),),
        codec=Codec(PERMIT_EVENT_TYPES),
        apply=projection(PERMITS, insured_permit),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
