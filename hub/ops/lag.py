"""`hub lag`: per consumer group and partition, what the view applied against what the log holds.

The stored offset (`hub_consumer_offsets`, written with the view) is the truth; Kafka's
committed offset is the consumer's informational mirror of it and is shown beside it, so
an operator can check `kafka-consumer-groups` against the hub at a glance.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hub import bootstrap
from hub.errors import retry_transient
from hub.lag import partitions_of
from hub.ops._common import specs_of
from hub.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group: stored, committed and log offsets, and the oldest backlog."""

    group: str
    agency: str
    topic: str
    partition: int
    stored: int | None
    """Next offset the view will apply; None before its first batch."""
    kafka_committed: int | None
    """The group's committed offset in Kafka (the consumer's mirror of `stored`)."""
    log_start: int
    log_end: int
    oldest_unprocessed_at: datetime | None
    """Timestamp of the first record the view has not applied; None when caught up."""

    @property
    def lag(self) -> int:
        """Records in the log the view has not applied (a never-consumed partition: all of them)."""
        position = self.log_start if self.stored is None else max(self.stored, self.log_start)
        return max(self.log_end - position, 0)

    def age_seconds(self, now: datetime) -> float | None:
        """How long the oldest unprocessed record has been waiting."""
        if self.oldest_unprocessed_at is None:
            return None
        return max((now - self.oldest_unprocessed_at).total_seconds(), 0.0)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """The row as `--json` prints it."""
        return {**asdict(self), "lag": self.lag, "oldest_unprocessed_age_s": self.age_seconds(now)}


async def lag_report(settings: Settings, groups: list[str] | None = None) -> list[PartitionLag]:
    """Every partition of the named groups' topics (all agencies when none are named)."""
    specs = specs_of(settings, groups)
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
        isolation_level="read_committed", client_id="hub-ops-lag",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="hub-ops-lag")
    await retry_transient("start lag reader", reader.start)
    try:
        await retry_transient("start kafka admin", admin.start)
        rows: list[PartitionLag] = []
        for agency, spec in specs:
            tps = [
                TopicPartition(t, p) for t in spec.topics for p in await partitions_of(reader, t)
            ]
            starts = await reader.beginning_offsets(tps)
            ends = await reader.end_offsets(tps)
            stored = await _stored_offsets(settings, agency, spec.group_id)
            committed = await admin.list_consumer_group_offsets(spec.group_id)
            for tp in tps:
                rows.append(PartitionLag(
                    group=spec.group_id, agency=agency, topic=tp.topic, partition=tp.partition,
                    stored=stored.get((tp.topic, tp.partition)),
                    kafka_committed=committed[tp].offset if tp in committed else None,
                    log_start=starts[tp], log_end=ends[tp], oldest_unprocessed_at=None,
                ))
        return await _with_oldest_timestamps(reader, rows)
    finally:
        await admin.close()
        await reader.stop()


async def _stored_offsets(
    settings: Settings, agency: str, group: str
) -> dict[tuple[str, int], int]:
    async with bootstrap.pool(settings, agency, max_size=1) as p:  # type: ignore[arg-type]
        found = await p.fetch(
            "SELECT topic, partition, next_offset FROM hub_consumer_offsets WHERE group_id = $1",
            group,
        )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in found}


async def _with_oldest_timestamps(
    reader: AIOKafkaConsumer, rows: list[PartitionLag], wait_s: float = 10.0
) -> list[PartitionLag]:
    """Fill in the timestamp of the record at each lagging partition's position."""
    position = {
        TopicPartition(r.topic, r.partition): r.log_end - r.lag for r in rows if r.lag > 0
    }
    found: dict[TopicPartition, int] = {}
    if position:
        reader.assign(list(position))
        for tp, offset in position.items():
            reader.seek(tp, offset)
        deadline = time.monotonic() + wait_s
        while len(found) < len(position) and time.monotonic() < deadline:
            batch = await reader.getmany(timeout_ms=200, max_records=len(position) * 50)
            for tp, records in batch.items():
                if tp not in found and records:
                    # The first record at or after the position: a control record or an
                    # aborted transaction at exactly that offset is not an event.
                    found[tp] = records[0].timestamp
                    reader.pause(tp)
            await asyncio.sleep(0)
    out = []
    for r in rows:
        ts = found.get(TopicPartition(r.topic, r.partition))
        at = datetime.fromtimestamp(ts / 1000, UTC) if ts is not None else None
        out.append(PartitionLag(**{**asdict(r), "oldest_unprocessed_at": at}))
    return out
