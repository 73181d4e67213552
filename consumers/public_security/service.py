"""Wiring of the public security (entry-exit) to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from consumers.public_security.handlers import checked_permit
from consumers.public_security.views import DDL, PERMITS, PublicSecurityView
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.dispatch import DISPATCH_DDL, Router
from hub.outbox import OUTBOX_DDL
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics

AGENCY = "public_security"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, DDL)


def router(settings: Settings) -> Router[PublicSecurityView]:
    """What the agency does with each event type it consumes."""
    r: Router[PublicSecurityView] = Router(outcome_topic=settings.topic(topics.RESIDENCE_EVENTS), view_factory=PublicSecurityView)
    r.project(PERMIT_EVENT_TYPES, PERMITS, checked_permit)
    return r


def consumer_spec(settings: Settings) -> ConsumerSpec:
    """The public security (entry-exit) consumer group: its topics, codec and handlers."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),),
        codec=Codec(PERMIT_EVENT_TYPES),
        apply=router(settings).batch_handler(),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
