"""The work-permit authority's declaration to the hub, and its command side on its database.

The authority publishes the permit lifecycle from its outbox (relayed by `hub run
workpermit`) and holds the permits' records every agency view is compared with. It
consumes nothing. Its calendar, run by `hub run workpermit` on the clock, expires the
permits whose end has passed and lapses the notification letters whose validity ran out
before the permit was issued.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date

import asyncpg

from hub.agency import Agency, Channel
from hub.clock import CalendarWork
from hub.db import open_pool
from hub.settings import Settings
from producers.work_permit.store import Authority
from schemas import PERMIT_EVENT_TYPES, topics

NAME = "workpermit"


@contextlib.asynccontextmanager
async def authority(settings: Settings) -> AsyncIterator[Authority]:
    """The authority's command side on its own database, closed on exit."""
    async with open_pool(settings.dsn(NAME)) as pool:
        yield Authority(pool, topic=settings.topic(topics.PERMIT_EVENTS))


def calendar(settings: Settings) -> CalendarWork:
    """The authority's day: every active permit past its end expires (PermitExpired), and
    every letter past its validity without the permit issued lapses
    (NotificationLetterLapsed), each through the outbox as any command; idempotent, so
    `hub run` repeats it at every tick."""
    topic = settings.topic(topics.PERMIT_EVENTS)

    async def work(pool: asyncpg.Pool, today: date) -> int:
        authority = Authority(pool, topic=topic)
        expired = await authority.expire_ended(today)
        lapsed = await authority.lapse_ended(today)
        return len(expired) + len(lapsed)

    return work


AGENCY = Agency(
    name=NAME,
    title="Work-permit authority",
    package="producers.work_permit",
    publishes=Channel(topics.PERMIT_EVENTS, PERMIT_EVENT_TYPES,
                      "The permit lifecycle: the work-permit authority's outbox relay publishes "
                      "each permit's record with every change.", compacted=True,
                      per_audience=True),
    records=Authority,
    calendar=calendar,
)
"""The authority, as the hub's registry finds it (entry point `permit_hub.agencies`)."""
