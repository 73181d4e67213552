"""The work-permit authority's declaration to the hub, and its command side on its database.

The authority publishes the permit lifecycle from its outbox (relayed by `hub run
workpermit`) and holds the permits' records every agency view is compared with. It
consumes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from hub.agency import Agency, Channel
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


AGENCY = Agency(
    name=NAME,
    title="Work-permit authority",
    package="producers.work_permit",
    publishes=Channel(topics.PERMIT_EVENTS, PERMIT_EVENT_TYPES,
                      "The permit lifecycle: the work-permit authority's outbox relay publishes "
                      "each permit's record with every change.", compacted=True,
                      per_audience=True),
    records=Authority,
)
"""The authority, as the hub's registry finds it (entry point `permit_hub.agencies`)."""
