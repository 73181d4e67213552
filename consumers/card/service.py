"""Wiring of the Social Security Card service to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from consumers.card.handlers import card_permit
from consumers.card.views import DDL, PERMITS, CardView
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.dispatch import DISPATCH_DDL, Router
from hub.outbox import OUTBOX_DDL
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics

AGENCY = "card"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, DDL)


def router(settings: Settings) -> Router[CardView]:
    """What the agency does with each event type it consumes."""
    r: Router[CardView] = Router(outcome_topic=settings.topic(topics.CARD_EVENTS), view_factory=CardView)
    r.project(PERMIT_EVENT_TYPES, PERMITS, card_permit)
    return r


def consumer_spec(settings: Settings) -> ConsumerSpec:
    """The Social Security Card service consumer group: its topics, codec and handlers."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),),
        codec=Codec(PERMIT_EVENT_TYPES),
        apply=router(settings).batch_handler(),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
