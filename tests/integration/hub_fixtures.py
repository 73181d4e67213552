"""Fixtures that give each test its own topics, consumer groups and agency databases
on the session's Kafka and Postgres, so tests cannot see each other's data."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from hub import bootstrap
from hub.bootstrap import init_all
from hub.kafka import client_options, partitions_of
from hub.kafka_credentials import ADMIN, desk, front_door
from hub.ops.lag import agency_lag
from hub.ops.views import drifts
from hub.projection import fetch_all
from hub.registry import installed
from hub.settings import Settings
from hub.signing import SIGNATURE_HEADER
from schemas import CONTENT_TYPE, CloudEvent, topics

__all__ = ["hub_settings"]

if TYPE_CHECKING:
    from hub.consumer import ViewConsumer
    from hub.outbox import OutboxRelay

AUTHORITY = installed().authority().name
"""The principal that alone (with ops' redrive) writes the permit topic; tests that put
records there, good or malformed, stand in for the authority's relay."""

OBSERVER = ADMIN
"""Tests read topics as the set-up principal, a super user outside the ACL matrix."""


def writer_of(topic: str) -> str:
    """The principal that may write a topic (before the prefix): the front door of the
    agency taking requests on it, the desk of the agency taking decisions on it, or the
    agency publishing it."""
    for a in installed():
        if a.requests is not None and a.requests.topic == topic:
            return front_door(a.name)
        if a.decisions is not None and a.decisions.topic == topic:
            return desk(a.name)
        if any(c.topic == topic for c in (a.publishes, *a.publications()) if c is not None):
            return a.name
    raise LookupError(f"no agency declares topic {topic!r}")


@pytest.fixture
async def hub_settings(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Settings with a fresh prefix: new topics, groups and databases for this test; its
    topics are deleted after it."""
    settings = await fresh_hub(stack_settings)
    yield settings
    await drop_topics(settings)


async def drop_topics(settings: Settings) -> None:
    """Delete every topic under the settings' prefix. The session's one broker would
    otherwise keep every test's topics (some 25 of 6 partitions each), and grow slow to
    restart and short of heap as the session goes on."""
    admin = AIOKafkaAdminClient(**client_options(settings, ADMIN), client_id="test-cleanup")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    except KafkaError as exc:  # the test's result stands; the broker keeps the topics
        print(f"could not delete the test's topics: {type(exc).__name__}")
    finally:
        await admin.close()


async def fresh_hub(stack_settings: Settings) -> Settings:
    """The session's settings under a fresh prefix, with the hub initialised there."""
    tag = secrets.token_hex(3)
    settings = stack_settings.model_copy(update={
        "topic_prefix": f"{stack_settings.topic_prefix}{tag}.",
        "database_prefix": f"{stack_settings.database_prefix}{tag}_",
        "batch_timeout_ms": 50,
    })
    await init_all(settings)
    return settings


def with_home(settings: Settings, home: Path) -> Settings:
    """The settings with another home (own keys, own files), holding the same database
    passwords, as every process of one hub must."""
    shutil.copytree(settings.secrets_dir, home / settings.secrets_dir.relative_to(settings.home))
    return settings.model_copy(update={"home": home})


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 60.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    what: str = "condition",
    explain: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Wait until `check()` is true, failing the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            detail = f": {await explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        await asyncio.sleep(0.1)


async def publish(settings: Settings, events: Iterable[CloudEvent[Any]]) -> int:
    """Produce events to every agency's permit topic as the authority's relay would, each
    copy cut to what its agency reads and signed; return how many events."""
    key = bootstrap.signing_key(settings, AUTHORITY)
    [fan_out] = installed().audiences(settings, AUTHORITY).values()
    count = 0
    async with bootstrap.producer(settings, "test-authority", principal=AUTHORITY) as prod:
        futures = []
        for e in events:
            value, count = e.to_json(), count + 1
            for topic, copy in fan_out(value):
                futures.append(await prod.send(
                    topic, key=e.subject.encode(), value=copy,
                    headers=[("content-type", CONTENT_TYPE.encode()),
                             (SIGNATURE_HEADER, key.sign(copy))]))
        await asyncio.gather(*futures)
    return count


def permit_topic(settings: Settings, agency: str) -> str:
    """The topic (prefixed) on which `agency` receives the permit lifecycle."""
    return settings.topic(installed().get(agency).read_topic(topics.PERMIT_EVENTS))


def signed(settings: Settings, topic: str, value: bytes) -> list[tuple[str, bytes]]:
    """The headers a record on `topic` (unprefixed) carries: content type and signature, by
    whoever may publish there (for malformed input that must pass the signature check)."""
    key = bootstrap.signing_key(settings, writer_of(topic))
    return [("content-type", CONTENT_TYPE.encode()), (SIGNATURE_HEADER, key.sign(value))]

async def views_agree(
    settings: Settings, relay: OutboxRelay, consumers: Iterable[ViewConsumer], *,
    timeout: float = 120.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    what: str = "views to agree with the authority",
) -> None:
    """Wait until every view equals the authority's permits (`hub.ops.views.drifts`); on a
    timeout, say what the outbox, the relay, the lags and the consumers were doing."""

    async def settled() -> bool:
        return not await drifts(settings)

    async def explain() -> str:
        async with bootstrap.pool(settings, AUTHORITY, max_size=1) as p:
            left = await p.fetchval("SELECT count(*) FROM hub_outbox")
        lags = {a: sum(x.lag for x in await agency_lag(settings, a))
                for a in installed().names() if installed().get(a).consumes}
        found = await drifts(settings)
        states = [c.diagnostics() for c in consumers]
        return (f"outbox={left} published={relay.published} lag={lags} drifts={found[:3]}"
                f" consumers={states}")

    await eventually(settled, timeout=timeout, what=what, explain=explain)


def expected_rows(
    events: Iterable[CloudEvent[Any]], handler: Callable[[Any], tuple[Any, ...]]
) -> dict[str, dict[str, Any]]:
    """What a view must hold after these events: the newest row per permit."""
    newest: dict[str, CloudEvent[Any]] = {}
    for e in events:
        if e.subject not in newest or e.sequence > newest[e.subject].sequence:
            newest[e.subject] = e
    return {k: handler(e)._asdict() for k, e in newest.items()}  # type: ignore[attr-defined]


async def view_rows(settings: Settings, agency: str) -> dict[str, dict[str, Any]]:
    """A view's rows without the bookkeeping column applied_at."""
    table = installed().view(agency).table
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        rows = await fetch_all(p, table)
    return {k: {c: v for c, v in r.items() if c != "applied_at"} for k, r in rows.items()}


async def read_topic(
    settings: Settings, topic: str, timeout: float = 5.0,  # noqa: ASYNC109 - a read deadline
    *, principal: str = OBSERVER,
) -> list[ConsumerRecord]:
    """Every record currently in a topic, in partition order, read as `principal`."""
    reader = AIOKafkaConsumer(**client_options(settings, principal), enable_auto_commit=False)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(reader, topic)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for recs in (await reader.getmany(timeout_ms=200)).values():
                records.extend(recs)
        return records
    finally:
        await reader.stop()
