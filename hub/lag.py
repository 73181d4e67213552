"""How far each agency view is behind its topics: stored offsets against log-end offsets."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub import bootstrap
from hub.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group: what the view has applied and what the log holds."""

    group: str
    topic: str
    partition: int
    stored: int | None
    end: int

    @property
    def lag(self) -> int:
        """Messages in the log the view has not applied yet."""
        return self.end - (self.stored or 0)


async def end_offsets(settings: Settings, topic_names: list[str]) -> dict[TopicPartition, int]:
    """The log-end offset of every partition of these topics."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topic_names for p in await partitions_of(consumer, t)]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The partition numbers of a topic, refreshing metadata if the client has none yet."""
    known = consumer.partitions_for_topic(topic)
    if not known:
        await consumer._client.force_metadata_update()
        known = consumer.partitions_for_topic(topic)
    if not known:
        raise LookupError(f"topic {topic!r} does not exist")
    return sorted(known)


async def agency_lag(settings: Settings, agency: str) -> list[PartitionLag]:
    """Per partition of the agency's topics: stored offset, end offset and lag."""
    spec = bootstrap.CONSUMER_AGENCIES[agency].consumer_spec(settings)
    ends = await end_offsets(settings, list(spec.topics))
    async with bootstrap.pool(settings, agency, max_size=1) as p:  # type: ignore[arg-type]
        rows = await p.fetch(
            "SELECT topic, partition, next_offset FROM hub_consumer_offsets WHERE group_id = $1",
            spec.group_id,
        )
    stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    return [
        PartitionLag(
            spec.group_id, tp.topic, tp.partition, stored.get((tp.topic, tp.partition)), end
        )
        for tp, end in sorted(ends.items())
    ]


async def caught_up(settings: Settings, agency: str) -> bool:
    """True when the agency's view has applied everything its topics hold."""
    return all(p.lag == 0 for p in await agency_lag(settings, agency))
