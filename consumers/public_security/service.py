"""Wiring of the public security (entry-exit) service to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from consumers.public_security.handlers import checked_permit
from consumers.public_security.views import DDL, PERMITS
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.outbox import OUTBOX_DDL
from hub.projection import projection
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics

AGENCY = "public_security"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DDL)


def consumer_spec(settings: Settings) -> ConsumerSpec:
    """The public security (entry-exit) consumer group: the permit lifecycle into its view."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),),
        codec=Codec(PERMIT_EVENT_TYPES),
        apply=projection(PERMITS, checked_permit),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
