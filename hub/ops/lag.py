"""`hub lag`: per consumer group and partition, what the view applied against what the log holds.

The stored offset (`hub_consumer_offsets`, written with the view) is the truth; Kafka's
committed offset is the consumer's informational mirror of it and is shown beside it, so
an operator can check `kafka-consumer-groups` against the hub at a glance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hub.agency import Agency
from hub.db import open_pool, stored_offsets
from hub.errors import retry_transient
from hub.kafka import client_options, partitions_of
from hub.kafka_credentials import OPS
from hub.registry import installed
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


def _agencies(settings: Settings, groups: list[str] | None) -> list[Agency]:
    """The named agencies' groups (by name or group id), or every consuming agency."""
    registry = installed()
    if not groups:
        return registry.consumers()
    return [registry.consumer(settings, g) for g in groups]


async def lag_report(settings: Settings, groups: list[str] | None = None) -> list[PartitionLag]:
    """Every partition of the named groups' topics (all agencies when none are named), with
    Kafka's committed offsets and the age of the oldest record each view has not applied."""
    admin = AIOKafkaAdminClient(**client_options(settings, OPS), client_id="hub-ops-lag")
    await retry_transient("start kafka admin", admin.start)
    try:
        committed = {
            a.group_id(settings): await admin.list_consumer_group_offsets(a.group_id(settings))
            for a in _agencies(settings, groups)
        }
        async with _reader(settings) as reader:
            rows = await _rows(settings, reader, groups, committed)
            return await _with_oldest_timestamps(reader, rows)
    finally:
        await admin.close()


async def agency_lag(settings: Settings, agency: str) -> list[PartitionLag]:
    """Per partition of one agency's topics: what its view applied against the log."""
    async with _reader(settings) as reader:
        return await _rows(settings, reader, [agency], {})


async def caught_up(settings: Settings, agency: str) -> bool:
    """True when the agency's view has applied everything its topics hold."""
    return all(p.lag == 0 for p in await agency_lag(settings, agency))


@contextlib.asynccontextmanager
async def _reader(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    reader = AIOKafkaConsumer(
        **client_options(settings, OPS), enable_auto_commit=False,
        isolation_level="read_committed", client_id="hub-ops-lag",
    )
    await retry_transient("start lag reader", reader.start)
    try:
        yield reader
    finally:
        await reader.stop()


async def _rows(
    settings: Settings, reader: AIOKafkaConsumer, groups: list[str] | None,
    committed: dict[str, dict[TopicPartition, Any]],
) -> list[PartitionLag]:
    rows: list[PartitionLag] = []
    for agency in _agencies(settings, groups):
        group = agency.group_id(settings)
        tps = [TopicPartition(settings.topic(t), p) for t in agency.reads
               for p in await partitions_of(reader, settings.topic(t))]
        starts = await reader.beginning_offsets(tps)
        ends = await reader.end_offsets(tps)
        async with open_pool(settings.dsn(agency.name), max_size=1) as pool:
            stored = await stored_offsets(pool, group)
        for tp in tps:
            mirror = committed.get(group, {}).get(tp)
            rows.append(PartitionLag(
                group=group, agency=agency.name, topic=tp.topic, partition=tp.partition,
                stored=stored.get((tp.topic, tp.partition)),
                kafka_committed=mirror.offset if mirror is not None else None,
                log_start=starts[tp], log_end=ends[tp], oldest_unprocessed_at=None,
            ))
    return rows


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
