"""The composition root: every process assembles its parts here, from one Settings.

Nothing is built at import time; tests call these with their own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType

import asyncpg

import consumers.card
import consumers.public_security
import consumers.social_insurance
from hub.consumer import ViewConsumer
from hub.db import RUNTIME_DDL, create_pool, migrate
from hub.kafka import Producer, ensure_topics
from hub.logging import get_logger
from hub.outbox import OUTBOX_DDL, OutboxRelay
from hub.settings import Agency, Settings
from hub.stack.postgres import ensure_databases
from producers.work_permit import AUTHORITY_DDL, Authority
from schemas import topics

log = get_logger(__name__)

CONSUMER_AGENCIES: dict[str, ModuleType] = {
    "card": consumers.card,
    "public_security": consumers.public_security,
    "social_insurance": consumers.social_insurance,
}
"""Agency name → its consumer package (handlers, views, service)."""

SCHEMAS: dict[Agency, tuple[str, ...]] = {
    "workpermit": (RUNTIME_DDL, OUTBOX_DDL, AUTHORITY_DDL),
    "card": consumers.card.SCHEMA,
    "public_security": consumers.public_security.SCHEMA,
    "social_insurance": consumers.social_insurance.SCHEMA,
}


async def init_databases(settings: Settings) -> None:
    """Create each agency's database if missing, and its tables."""
    await ensure_databases(settings.server_url(), [settings.database_name(a) for a in SCHEMAS])
    for agency, ddl in SCHEMAS.items():
        pool = await create_pool(settings.dsn(agency), max_size=1)
        try:
            await migrate(pool, *ddl)
        finally:
            await pool.close()


async def init_all(settings: Settings) -> None:
    """Topics and databases: everything a hub process expects to exist."""
    await ensure_topics(settings)
    await init_databases(settings)


@contextlib.asynccontextmanager
async def producer(
    settings: Settings, client_id: str, *, linger_ms: int = 0
) -> AsyncIterator[Producer]:
    """A started idempotent producer, stopped (and flushed) on exit."""
    p = Producer(settings.bootstrap, client_id=client_id, linger_ms=linger_ms)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@contextlib.asynccontextmanager
async def pool(
    settings: Settings, agency: Agency, *, max_size: int = 4
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on one agency's database, closed on exit."""
    p = await create_pool(settings.dsn(agency), max_size=max_size)
    try:
        yield p
    finally:
        await p.close()


@contextlib.asynccontextmanager
async def authority(settings: Settings) -> AsyncIterator[Authority]:
    """The work-permit authority's command side on its own database."""
    async with pool(settings, "workpermit") as p:
        yield Authority(p, topic=settings.topic(topics.PERMIT_EVENTS))


@dataclass
class Running:
    """A background component and the task running it."""

    task: asyncio.Task[None]

    async def wait(self) -> None:
        """Wait for the component's task, re-raising its error if it failed."""
        await self.task


@contextlib.asynccontextmanager
async def running_consumer(
    settings: Settings, agency: str, *, client_id: str | None = None
) -> AsyncIterator[ViewConsumer]:
    """One member of an agency's consumer group, consuming in the background until exit."""
    spec = CONSUMER_AGENCIES[agency].consumer_spec(settings)
    async with pool(settings, agency) as p, producer(settings, f"{spec.group_id}-dlq") as prod:  # type: ignore[arg-type]
        runtime = ViewConsumer(
            spec,
            bootstrap=settings.bootstrap,
            pool=p,
            producer=prod,
            max_records=settings.batch_max_records,
            timeout_ms=settings.batch_timeout_ms,
            client_id=client_id,
        )
        task = asyncio.create_task(runtime.run(), name=f"consumer-{agency}")
        try:
            yield runtime
        finally:
            runtime.stop()
            await _finish(task)


@contextlib.asynccontextmanager
async def running_relay(
    settings: Settings, agency: Agency = "workpermit"
) -> AsyncIterator[OutboxRelay]:
    """The outbox relay of one agency's database, relaying in the background until exit."""
    async with producer(settings, f"{agency}-relay") as prod:
        relay = OutboxRelay(settings.dsn(agency), prod)
        task = asyncio.create_task(relay.run(), name=f"relay-{agency}")
        try:
            yield relay
        finally:
            relay.stop()
            await _finish(task)


async def _finish(task: asyncio.Task[None], grace: float = 15.0) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
