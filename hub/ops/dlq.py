"""`hub dlq list|show`: a consumer group's dead letters, read straight from its DLQ topic.

The topic is the record: nothing is copied elsewhere. Each message carries why it failed
and where it came from in `dlq.*` headers (hub.kafka.dead_letter_headers).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from hub.agency import Agency
from hub.errors import BadTarget, retry_transient
from hub.kafka import REDRIVE_COUNT, Headers, client_options, partitions_of, quarantine_topic
from hub.kafka_credentials import OPS
from hub.registry import installed
from hub.settings import Settings


@dataclass(frozen=True)
class DeadLetterMessage:
    """One message in a DLQ topic, with its `dlq.*` headers read out."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers

    @property
    def ref(self) -> str:
        """`partition:offset`, how operators name it."""
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """A header's value as text (the last one, if repeated)."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode(errors="replace") if found else None

    @property
    def redrive_count(self) -> int:
        """How often it was redriven before failing this time."""
        raw = self.header(REDRIVE_COUNT)
        return int(raw) if raw and raw.isdigit() else 0

    @property
    def origin(self) -> tuple[str, int, int] | None:
        """Topic, partition and offset it failed at, from its headers (None if unreadable)."""
        topic, partition, offset = (self.header(f"dlq.origin.{k}")
                                    for k in ("topic", "partition", "offset"))
        if not topic or not (partition or "").isdigit() or not (offset or "").isdigit():
            return None
        return topic, int(partition or 0), int(offset or 0)

    def event_type(self) -> str | None:
        """The CloudEvents `type` in the value, if the value is JSON with one."""
        try:
            body = json.loads(self.value)
        except ValueError:
            return None
        found = body.get("type") if isinstance(body, dict) else None
        return found if isinstance(found, str) else None

    def summary(self) -> dict[str, Any]:
        """What `dlq list` shows of it."""
        origin = self.origin
        return {
            "ref": self.ref, "partition": self.partition, "offset": self.offset,
            "reason": self.header("dlq.reason"), "error_class": self.header("dlq.error.class"),
            "error_message": self.header("dlq.error.message"),
            "origin": f"{origin[0]}:{origin[1]}:{origin[2]}" if origin else None,
            "event_type": self.event_type(), "redrive_count": self.redrive_count,
            "dead_lettered_at": self.header("dlq.time"),
        }

    def detail(self) -> dict[str, Any]:
        """Everything about it, as `dlq show` prints it."""
        try:
            value: Any = json.loads(self.value)
        except ValueError:
            value = self.value.decode(errors="replace")
        return {
            **self.summary(), "topic": self.topic,
            "timestamp": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "headers": [[k, v.decode(errors="replace")] for k, v in self.headers],
            "value": value,
        }


def dlq_topic_of(
    settings: Settings, group: str, *, quarantine: bool = False
) -> tuple[Agency, str]:
    """The agency of a group (by name or group id) and its dead-letter (or quarantine) topic."""
    agency = installed().consumer(settings, group)
    topic = agency.dead_letter_topic(settings)
    return agency, quarantine_topic(topic) if quarantine else topic


def _message(rec: ConsumerRecord) -> DeadLetterMessage:
    return DeadLetterMessage(rec.topic, rec.partition, rec.offset, rec.timestamp, rec.key,
                             rec.value or b"", list(rec.headers or ()))


async def _reader(settings: Settings) -> AIOKafkaConsumer:
    reader = AIOKafkaConsumer(**client_options(settings, OPS), enable_auto_commit=False,
                              client_id="hub-ops-dlq")
    await retry_transient("start dlq reader", reader.start)
    return reader


async def _partitions(reader: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    try:
        return [TopicPartition(topic, p) for p in await partitions_of(reader, topic)]
    except LookupError:
        raise BadTarget(f"dead-letter topic {topic!r} does not exist") from None


async def read_all(settings: Settings, topic: str, wait_s: float = 30.0) -> list[DeadLetterMessage]:
    """Every message in a DLQ topic, by partition and offset."""
    reader = await _reader(settings)
    try:
        tps = await _partitions(reader, topic)
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        for tp, start in (await reader.beginning_offsets(tps)).items():
            reader.seek(tp, start)
        out: list[DeadLetterMessage] = []
        deadline = time.monotonic() + wait_s
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {wait_s}s")
            for records in (await reader.getmany(timeout_ms=200)).values():
                out += [_message(r) for r in records if r.offset < ends[TopicPartition(
                    r.topic, r.partition)]]
        return sorted(out, key=lambda m: (m.partition, m.offset))
    finally:
        await reader.stop()


def parse_ref(ref: str) -> tuple[int, int]:
    """`partition:offset` as two numbers, or BadTarget."""
    partition, sep, offset = ref.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise BadTarget(f"{ref!r} is not partition:offset (for example 0:42)")
    return int(partition), int(offset)


async def read_one(settings: Settings, topic: str, ref: str) -> DeadLetterMessage:
    """The message at `partition:offset` of a DLQ topic, or BadTarget if there is none."""
    partition, offset = parse_ref(ref)
    reader = await _reader(settings)
    try:
        tp = TopicPartition(topic, partition)
        if tp not in await _partitions(reader, topic):
            raise BadTarget(f"{topic} has no partition {partition}")
        start = (await reader.beginning_offsets([tp]))[tp]
        end = (await reader.end_offsets([tp]))[tp]
        if not start <= offset < end:
            raise BadTarget(f"{topic} partition {partition} has no offset {offset} "
                            f"(it holds {start}..{end - 1})" if end > start else
                            f"{topic} partition {partition} has no offset {offset} (it is empty)")
        reader.assign([tp])
        reader.seek(tp, offset)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for rec in (await reader.getmany(tp, timeout_ms=200)).get(tp, []):
                if rec.offset == offset:
                    return _message(rec)
                if rec.offset > offset:
                    raise BadTarget(f"{topic}:{ref} holds no message (compacted or a marker)")
        raise TimeoutError(f"could not read {topic}:{ref}")
    finally:
        await reader.stop()


def reason_counts(messages: list[DeadLetterMessage]) -> dict[str, int]:
    """How many dead letters there are per reason."""
    return dict(Counter(m.header("dlq.reason") or "(none)" for m in messages).most_common())
