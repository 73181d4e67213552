"""Nodes of a three-node cluster die while the authority writes: the permit topic's leader,
then the active controller. Topics have three replicas and need two in sync, so a write Kafka
acknowledged survives one node lost; the relay and the consumers ride the failover, and every
view ends equal to the authority with nothing lost and nothing dead-lettered.

Marked `cluster`: three JVMs beside Postgres are too much to add to `make test` on a 2-core
machine; `make test-cluster` runs them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from demo.synthetic import _employer, _holder
from hub import bootstrap
from hub.consumer import ViewConsumer
from hub.kafka import client_options, topic_configs
from hub.kafka_credentials import ADMIN
from hub.outbox import OutboxRelay
from hub.registry import installed
from hub.settings import Settings
from hub.stack.cluster import KafkaCluster
from hub.stack.kafka import KafkaNode
from producers.work_permit import authority
from schemas import topics
from schemas.permits import Category
from tests.integration.hub_fixtures import (
    AUTHORITY,
    eventually,
    fresh_hub,
    permit_topic,
    read_topic,
    views_agree,
)
from tests.integration.stack_fixtures import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

AFTER_KILL = 30
"""Permits the authority issues after the kill (each: two commands, two events)."""


@pytest.fixture
async def cluster_hub(running_cluster: RunningStack) -> Settings:
    """The cluster session's settings under a fresh prefix, the hub initialised there."""
    return await fresh_hub(running_cluster.settings)


@dataclass
class Writer:
    """The authority applying for and issuing permits, one after another, until stopped."""

    settings: Settings
    issued: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        rng = random.Random(7)
        day = date(2025, 3, 3)
        async with authority(self.settings) as auth:
            while not self.stop.is_set():
                rec = await auth.apply(holder=_holder(rng), employer=_employer(rng),
                                       category=Category.B, position="Welder",
                                       approved_months=12, today=day)
                await auth.issue(rec.permit_no, valid_from=day + timedelta(days=10), today=day)
                self.issued.append(rec.permit_no)
                await asyncio.sleep(0.02)


@dataclass
class RunningHub:
    """The authority's relay, the three agency consumers, and the authority writing."""

    relay: OutboxRelay
    consumers: tuple[ViewConsumer, ...]
    writer: Writer

    async def issued_beyond(self, count: int, what: str) -> None:
        """Wait until the authority committed `count` more permits and the relay published
        events beyond those it had published now."""
        start, published = len(self.writer.issued), self.relay.published

        async def moved() -> bool:
            return (len(self.writer.issued) >= start + count
                    and self.relay.published > published)

        await eventually(moved, timeout=180, what=what)


@asynccontextmanager
async def writing_hub(settings: Settings) -> AsyncIterator[RunningHub]:
    """Everything running while the authority writes; on exit the writer has stopped."""
    writer = Writer(settings)
    async with (
        bootstrap.running_relay(settings, AUTHORITY) as relay,
        bootstrap.running_consumer(settings, "card") as c1,
        bootstrap.running_consumer(settings, "public_security") as c2,
        bootstrap.running_consumer(settings, "social_insurance") as c3,
    ):
        task = asyncio.create_task(writer.run(), name="authority-writer")
        try:
            yield RunningHub(relay, (c1, c2, c3), writer)
        finally:
            writer.stop.set()
            await task


async def _leaders(settings: Settings) -> dict[int, int]:
    """The permit topic's partitions and the node id leading each."""
    admin = AIOKafkaAdminClient(**client_options(settings, ADMIN))
    await admin.start()
    try:
        [topic] = await admin.describe_topics([permit_topic(settings, "card")])
    finally:
        await admin.close()
    return {p["partition"]: p["leader"] for p in topic["partitions"]}


async def _kill_and_settle(
    settings: Settings, cluster: KafkaCluster, pick: Callable[[], KafkaNode], what: str
) -> KafkaNode:
    """With the hub running and the authority writing, SIGKILL the node `pick` names, keep
    writing past the failover, and wait for every view to equal the authority."""
    async with writing_hub(settings) as hub:
        await hub.issued_beyond(10, "the hub to run before the kill")
        victim = pick()
        await asyncio.to_thread(victim.kill)
        await hub.issued_beyond(AFTER_KILL, f"the authority and relay to go on after {what}")
        hub.writer.stop.set()
        await views_agree(settings, hub.relay, hub.consumers, timeout=180,
                          what=f"views to agree after {what}")
    async with bootstrap.pool(settings, AUTHORITY, max_size=1) as p:
        assert await p.fetchval("SELECT count(*) FROM hub_outbox") == 0
        assert await p.fetchval("SELECT count(*) FROM hub_outbox_parked") == 0
        assert await p.fetchval("SELECT count(*) FROM permits") == len(hub.writer.issued)
    for agency in ("card", "public_security", "social_insurance"):
        dlq = topics.dead_letter_topic(settings.topic(agency))
        assert await read_topic(settings, dlq) == [], f"{agency} dead-lettered a fault"
    assert not any(c.stats.dead_lettered for c in hub.consumers)
    return victim


async def test_topics_have_three_replicas_and_need_two(cluster_hub: Settings) -> None:
    """`hub init` on the cluster creates every topic with a replica on each node and
    `min.insync.replicas` 2, so an acknowledged write (acks=all) is on two nodes at least."""
    names = installed().topics(cluster_hub)
    configs = await topic_configs(cluster_hub, names, ADMIN)
    in_sync = {n: c and c.values["min.insync.replicas"] for n, c in configs.items()}
    assert in_sync == dict.fromkeys(names, "2")
    admin = AIOKafkaAdminClient(**client_options(cluster_hub, ADMIN))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    replicas = {len(p["replicas"]) for t in described for p in t["partitions"]}
    assert replicas == {3}


async def test_the_permit_topics_leader_killed_while_the_authority_writes(
    cluster_hub: Settings, kafka_cluster: KafkaCluster
) -> None:
    """SIGKILL the node leading most of the permit topic's partitions mid-stream: the other
    nodes take the leadership over, and nothing the authority committed is lost."""
    before = await _leaders(cluster_hub)
    leader = Counter(before.values()).most_common(1)[0][0]
    victim = await _kill_and_settle(cluster_hub, kafka_cluster,
                                    lambda: kafka_cluster.node(leader),
                                    "the permit topic's leader died")
    after = await _leaders(cluster_hub)
    assert victim.node_id not in after.values()
    assert set(after) == set(before)


async def test_the_active_controller_killed_while_the_authority_writes(
    cluster_hub: Settings, kafka_cluster: KafkaCluster
) -> None:
    """SIGKILL the node leading the controller quorum mid-stream: the two voters left elect
    a new leader, and nothing the authority committed is lost."""
    _, epoch = kafka_cluster.quorum_leader()
    victim = await _kill_and_settle(cluster_hub, kafka_cluster,
                                    kafka_cluster.active_controller,
                                    "the active controller died")
    leader, new_epoch = kafka_cluster.quorum_leader()
    assert leader is not victim
    assert leader.is_running()
    assert new_epoch > epoch
