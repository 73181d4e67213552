"""Crashes, rebalances and outages on the real broker and database: the views still end
exactly as the events say, with nothing dead-lettered that was only a fault."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import date, timedelta

import asyncpg
import pytest

from consumers.card.handlers import card_permit
from consumers.social_insurance.handlers import permit_row
from consumers.social_insurance.service import person_keys
from demo.synthetic import _employer, _holder, stream
from hub import bootstrap
from hub.ops.lag import agency_lag, caught_up
from hub.registry import installed
from hub.settings import Settings
from hub.stack.kafka import KafkaNode
from producers.work_permit import authority
from schemas import topics
from schemas.permits import Category
from tests.integration.hub_fixtures import (
    eventually,
    expected_rows,
    publish,
    read_topic,
    view_rows,
    views_agree,
)

pytestmark = pytest.mark.integration


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "HUB_KAFKA_BOOTSTRAP": settings.bootstrap,
        "HUB_DATABASE_URL": settings.server_url(),
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_DATABASE_PREFIX": settings.database_prefix,
        "HUB_HOME": str(settings.home),
        "HUB_KAFKA_CA_FILE": str(settings.kafka_ca()),
        "HUB_KAFKA_CREDENTIALS_DIR": str(settings.kafka_password_file("ops").parent),
        "HUB_BATCH_MAX_RECORDS": "500",
        "HUB_LOG_FORMAT": "json",
    })
    return env


def _spawn_consumer(settings: Settings, agency: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run", agency],
        env=_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def _applied(settings: Settings, agency: str) -> int:
    return sum(p.stored or 0 for p in await agency_lag(settings, agency))


async def test_a_consumer_killed_mid_stream_ends_with_the_same_view(hub_settings: Settings) -> None:
    """A consumer process SIGKILLed three times while applying ends with exactly the view the
    events describe, and its stored offsets reach the log end without a gap."""
    events = list(stream(6000, seed=11))
    total = await publish(hub_settings, events)
    for round_no in range(3):
        proc = _spawn_consumer(hub_settings, "card")
        floor = await _applied(hub_settings, "card")

        async def progressed(floor: int = floor) -> bool:
            return await _applied(hub_settings, "card") > floor

        await eventually(progressed, timeout=60, what=f"progress before kill {round_no}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert await _applied(hub_settings, "card") < total, "killed before the end"
    proc = _spawn_consumer(hub_settings, "card")
    try:
        await eventually(lambda: caught_up(hub_settings, "card"), timeout=120,
                         what="card to finish after restarts")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "a SIGTERM stops the consumer cleanly"
    assert await view_rows(hub_settings, "card") == expected_rows(events, card_permit)
    dlq = topics.dead_letter_topic(hub_settings.topic("card"))
    assert await read_topic(hub_settings, dlq) == []


async def test_two_instances_share_the_partitions_and_survive_one_stopping(
    hub_settings: Settings,
) -> None:
    """Two members of one group split the partitions; when one stops mid-stream, the other
    takes its partitions over from the stored offsets and the view is still exact."""
    events = list(stream(3000, seed=12))
    half = len(events) // 2
    spec = installed().get("social_insurance").consumer_spec(
        hub_settings, bootstrap.verifier(hub_settings))
    every_partition = hub_settings.partitions * len(spec.topics)
    async with bootstrap.running_consumer(hub_settings, "social_insurance", client_id="si-b") as b:
        async with bootstrap.running_consumer(hub_settings, "social_insurance",
                                              client_id="si-a") as a:

            async def split() -> bool:
                return bool(a.assigned) and bool(b.assigned) and not (a.assigned & b.assigned)

            await eventually(split, what="both members to own partitions")
            assert len(a.assigned | b.assigned) == every_partition
            await publish(hub_settings, events[:half])

            async def both_applied() -> bool:
                return a.stats.applied > 0 and b.stats.applied > 0

            await eventually(both_applied, what="both members to apply events")
        # a has stopped; b must take over every partition and finish the stream.
        await publish(hub_settings, events[half:])

        async def b_owns_all() -> bool:
            return len(b.assigned) == every_partition

        await eventually(b_owns_all, what="the survivor to own every partition")
        await eventually(lambda: caught_up(hub_settings, "social_insurance"), what="catch-up")
    assert await view_rows(hub_settings, "social_insurance") == expected_rows(
        events, permit_row(person_keys(hub_settings)))


async def test_postgres_connections_cut_mid_stream_are_retried_not_dead_lettered(
    hub_settings: Settings,
) -> None:
    """Killing the consumer's database sessions again and again delays it but loses nothing
    and dead-letters nothing."""
    events = list(stream(4000, seed=13))
    await publish(hub_settings, events)
    admin = await asyncpg.connect(hub_settings.server_url())
    try:
        async with bootstrap.running_consumer(hub_settings, "card") as consumer:
            for _ in range(15):
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    hub_settings.database_name("card"),
                )
                await asyncio.sleep(0.15)
            await eventually(lambda: caught_up(hub_settings, "card"), what="card after the cuts")
    finally:
        await admin.close()
    assert consumer.stats.dead_lettered == 0
    assert await view_rows(hub_settings, "card") == expected_rows(events, card_permit)


async def test_commands_during_a_broker_outage_reach_the_views_after_it(
    hub_settings: Settings, kafka_node: KafkaNode
) -> None:
    """With Kafka stopped, the authority still commits (to its outbox); once Kafka is back the
    relay publishes everything and every view agrees with the authority."""
    async with (
        bootstrap.running_relay(hub_settings, "workpermit") as relay,
        bootstrap.running_consumer(hub_settings, "card") as c1,
        bootstrap.running_consumer(hub_settings, "public_security") as c2,
        bootstrap.running_consumer(hub_settings, "social_insurance") as c3,
        authority(hub_settings) as auth,
    ):
        import random

        rng = random.Random(5)
        kafka_node.stop()
        day = date(2025, 3, 3)
        for _ in range(20):
            rec = await auth.apply(holder=_holder(rng), employer=_employer(rng),
                                   category=Category.B, position="Welder", approved_months=12,
                                   today=day)
            await auth.issue(rec.permit_no, valid_from=day + timedelta(days=10), today=day)
        async with bootstrap.pool(hub_settings, "workpermit", max_size=1) as p:
            assert await p.fetchval("SELECT count(*) FROM hub_outbox") == 40
        kafka_node.start()
        # A JVM restarting on two cores shared with the rest of the suite can take minutes.
        kafka_node.wait_ready(180)
        await views_agree(hub_settings, relay, (c1, c2, c3),
                          what="views to agree after the outage")
        assert relay.published >= 40
