"""Wiring of public security (entry-exit) to Kafka: the only Kafka-aware module of the agency."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from consumers.public_security.handlers import (
    Policy,
    checked_permit,
    on_application,
    on_permit_cancelled,
    on_permit_extended,
)
from consumers.public_security.settings import PublicSecuritySettings
from consumers.public_security.tokens import PublishedKeys, token_check
from consumers.public_security.views import DDL, PERMITS, PublicSecurityView
from hub.consumer import ConsumerSpec
from hub.db import RUNTIME_DDL
from hub.dispatch import DISPATCH_DDL, Emit, Router
from hub.outbox import OUTBOX_DDL
from hub.permit_token import published_keys_path
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics
from schemas.permits import PermitCancelled, PermitExtended
from schemas.public_security import PUBLIC_SECURITY_REQUEST_TYPES, ResidencePermitApplied

AGENCY = "public_security"
SCHEMA = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, DDL)


def policy(settings: Settings, own: PublicSecuritySettings | None = None) -> Policy:
    """The handlers' policy: the card service's published keys and the configured deadlines."""
    own = own or PublicSecuritySettings()
    keys = PublishedKeys(published_keys_path(settings.home))
    return Policy(
        check_token=token_check(keys.current, timedelta(seconds=own.token_leeway_seconds)),
        cancellation_deadline_days=own.cancellation_deadline_days,
    )


def router(
    settings: Settings, own: PublicSecuritySettings | None = None
) -> Router[PublicSecurityView]:
    """What the agency does with each event type it consumes."""
    p = policy(settings, own)
    r: Router[PublicSecurityView] = Router(
        outcome_topic=settings.topic(topics.RESIDENCE_EVENTS), view_factory=PublicSecurityView
    )
    r.project(PERMIT_EVENT_TYPES, PERMITS, checked_permit)

    async def application(event: Any, view: PublicSecurityView) -> Sequence[Emit]:
        return await on_application(event, view, p)

    async def cancelled(event: Any, view: PublicSecurityView) -> Sequence[Emit]:
        return await on_permit_cancelled(event, view, p)

    r.on(ResidencePermitApplied, application)
    r.on(PermitCancelled, cancelled)
    r.on(PermitExtended, on_permit_extended)
    return r


def consumer_spec(
    settings: Settings, own: PublicSecuritySettings | None = None
) -> ConsumerSpec:
    """The public security consumer group: the permit lifecycle and the counter's requests."""
    group = settings.topic(AGENCY)
    return ConsumerSpec(
        group_id=group,
        topics=(settings.topic(topics.PERMIT_EVENTS),
                settings.topic(topics.PUBLIC_SECURITY_REQUESTS)),
        codec=Codec((*PERMIT_EVENT_TYPES, *PUBLIC_SECURITY_REQUEST_TYPES)),
        apply=router(settings, own).batch_handler(),
        dead_letter_topic=topics.dead_letter_topic(group),
    )
