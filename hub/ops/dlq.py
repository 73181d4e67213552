"""`hub dlq list|show`: a consumer group's dead letters, read straight from its DLQ topic.

The topic is the record: nothing is copied elsewhere. Each message carries why it failed
and where it came from in `dlq.*` headers (hub.kafka.dead_letter_headers). The topic is
read a fetch at a time (`scan`), never held whole, and a dead letter is shown whatever it
holds.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from hub.agency import Agency
from hub.errors import BadTarget, retry_transient
from hub.kafka import (
    TRUNCATED,
    RecordHeaders,
    client_options,
    partitions_of,
    quarantine_topic,
    redrive_count,
)
from hub.kafka_credentials import OPS
from hub.looks import Seen
from hub.registry import installed
from hub.reveal import REDACTED, redact, redact_error, shown_fields
from hub.settings import Settings

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
"""What must not reach a terminal raw: C0 and C1 controls (escape sequences, carriage
returns that overwrite a line, newlines that forge one) and bidirectional overrides."""

ERROR_MESSAGE = "dlq.error.message"
_PERMIT_NO = re.compile("[0-9]{18}")
"""A permit number (schemas.permits.PermitNo)."""


def printable(text: str) -> str:
    """`text` with every terminal control character written as its escape (`\\x1b`)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _text(raw: bytes | None, *, error: bool = False, reveal: bool = False) -> str | None:
    """Printable text; an error message's quoted values masked first (unless `reveal`),
    while its line breaks still tell where a library put them."""
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    if error:
        text = redact_error(text, reveal=reveal) or ""
    return printable(text)


def _json(raw: bytes) -> Any:
    """The JSON value of `raw`, or None. pydantic-core's parser stops at its nesting limit
    with a ValueError, where the standard library's raises RecursionError, and what it
    returns is shallow enough for `json.dumps` to print."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError:
        return None


def _number(text: str | None) -> int | None:
    return int(text) if text and len(text) <= 19 and text.isdecimal() else None


@dataclass(frozen=True)
class DeadLetterMessage:
    """One message in a DLQ topic, with its `dlq.*` headers read out.

    Whatever it holds (null or binary headers, any key, a value of any shape and depth),
    reading it never raises, and what it prints carries no terminal control character.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: RecordHeaders

    @property
    def ref(self) -> str:
        """`partition:offset`, how operators name it."""
        return f"{self.partition}:{self.offset}"

    def header(self, name: str, *, reveal: bool = False) -> str | None:
        """A header's value as printable text (the last one, if repeated; None if null); the
        error message's quoted values masked unless `reveal` (`hub.reveal.redact_error`)."""
        found = [v for k, v in self.headers if k == name]
        return _text(found[-1], error=name == ERROR_MESSAGE, reveal=reveal) if found else None

    @property
    def redrive_count(self) -> int:
        """How often it was redriven before failing this time (`hub.kafka.redrive_count`)."""
        return redrive_count(self.headers)

    @property
    def truncated(self) -> bool:
        """True when its value was cut to fit the DLQ (the whole is in the evidence log)."""
        return self.header(TRUNCATED) is not None

    @property
    def origin(self) -> tuple[str, int, int] | None:
        """Topic, partition and offset it failed at, from its headers (None if unreadable)."""
        topic = self.header("dlq.origin.topic")
        partition, offset = (_number(self.header(f"dlq.origin.{k}")) for k in ("partition",
                                                                               "offset"))
        if not topic or partition is None or offset is None:
            return None
        return topic, partition, offset

    def event_type(self) -> str | None:
        """The CloudEvents `type` in the value, if the value is JSON with one."""
        body = _json(self.value)
        found = body.get("type") if isinstance(body, dict) else None
        return printable(found) if isinstance(found, str) else None

    def summary(self, *, reveal: bool = False) -> dict[str, Any]:
        """What `dlq list` shows of it (the values an error message quotes masked unless
        `reveal`: a failing row's, a failing input's)."""
        origin = self.origin
        return {
            "ref": self.ref, "partition": self.partition, "offset": self.offset,
            "reason": self.header("dlq.reason"), "error_class": self.header("dlq.error.class"),
            "error_message": self.header(ERROR_MESSAGE, reveal=reveal),
            "origin": f"{origin[0]}:{origin[1]}:{origin[2]}" if origin else None,
            "event_type": self.event_type(), "redrive_count": self.redrive_count,
            "dead_lettered_at": self.header("dlq.time"), "truncated": self.truncated,
        }

    def permit_no(self) -> str | None:
        """The permit number it is about, when its CloudEvents subject or else its key is one
        (a request named by an SSN, or a value that is not an event, names none)."""
        body = _json(self.value)
        subject = body.get("subject") if isinstance(body, dict) else None
        for candidate in (subject, _text(self.key)):
            if isinstance(candidate, str) and _PERMIT_NO.fullmatch(candidate):
                return candidate
        return None

    def detail(self, *, reveal: bool = False) -> dict[str, Any]:
        """Everything about it, as `dlq show` prints it: personal values in its value and its
        error message masked unless `reveal` (a value that is not JSON, whose fields cannot
        be told, whole)."""
        value = _json(self.value)
        shown = redact(value, reveal=reveal) if isinstance(value, dict | list) else (
            (_text(self.value) if value is None else value) if reveal else REDACTED)
        return {
            **self.summary(reveal=reveal), "topic": self.topic,
            "timestamp": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "key": _text(self.key),
            "headers": [[printable(k), _text(v, error=k == ERROR_MESSAGE, reveal=reveal)]
                        for k, v in self.headers],
            "value": shown,
        }

    def seen(self) -> Seen:
        """What `dlq show` shows of it, for the record of looks: the message by its place,
        the permit it is about, the names of the value's fields."""
        value = _json(self.value)
        fields = shown_fields(value, "value") if isinstance(value, dict) else ["value"]
        return Seen(f"{self.topic}:{self.partition}:{self.offset}", self.permit_no(),
                    ["key", "headers", *fields])


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


async def scan(
    settings: Settings, topic: str, *, since: datetime | None = None,
    limit: int | None = None, idle_s: float = 30.0,
) -> AsyncIterator[DeadLetterMessage]:
    """The messages of a DLQ topic by partition and offset, yielded as they are read, so no
    command holds the topic in memory. `since`: only those dead-lettered at or after that
    time (the topic's append time); `limit`: at most that many."""
    if limit is not None and limit <= 0:
        return
    reader = await _reader(settings)
    try:
        tps = await _partitions(reader, topic)
        ends = await reader.end_offsets(tps)
        starts = await _starts(reader, tps, since, ends)
        left = limit
        for tp in tps:
            async for m in _read_partition(reader, tp, starts[tp], ends[tp], idle_s):
                yield m
                if left is not None:
                    left -= 1
                    if left == 0:
                        return
    finally:
        await reader.stop()


async def _starts(
    reader: AIOKafkaConsumer, tps: list[TopicPartition], since: datetime | None,
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    if since is None:
        return dict(await reader.beginning_offsets(tps))
    found = await reader.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}


async def _read_partition(
    reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, idle_s: float
) -> AsyncIterator[DeadLetterMessage]:
    """The messages of one partition from `start` up to `end`, a fetch at a time."""
    reader.assign([tp])
    reader.seek(tp, start)
    deadline = time.monotonic() + idle_s
    while await reader.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {tp.topic}:{tp.partition} to its end: no "
                               f"progress in {idle_s}s")
        records = (await reader.getmany(tp, timeout_ms=200, max_records=500)).get(tp, [])
        if records:
            deadline = time.monotonic() + idle_s
        for rec in records:
            if rec.offset < end:
                yield _message(rec)


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
