"""What the runtime hands an agency: a Kafka record accepted as an event, and how to accept one.

The consumer and `hub replay` accept records through the same function, so a record the
live view dead-letters is exactly one a rebuilt view leaves out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord

from hub.db import Connection
from schemas import CloudEvent, Codec, DecodeError


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Kafka record and the event decoded from it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    event: CloudEvent[Any]
    headers: tuple[tuple[str, bytes], ...] = ()

    def bind(self) -> dict[str, Any]:
        """The log context of this delivery (no personal data)."""
        return {
            "event_id": str(self.event.id),
            "event_type": self.event.type,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


BatchHandler = Callable[[Connection, Sequence[Delivery]], Awaitable[None]]
"""Applies a batch of deliveries to a view inside the caller's transaction."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a record is not an event this group can apply: the dead letter's reason."""

    reason: str
    error: Exception


class KeyMissing(ValueError):
    """The record has no key, so nothing placed it on its subject's partition."""


class KeyMismatch(ValueError):
    """The record's key is not the event's subject (which the key must be, for ordering)."""


def accept(rec: ConsumerRecord, codec: Codec) -> Delivery | Refusal:
    """Decode a record and check its key: the one acceptance rule of every reader."""
    try:
        event = codec.decode(rec.value)
    except DecodeError as exc:
        return Refusal(exc.failure.value, exc)
    if rec.key is None:
        # A keyless record lands on any partition: its subject's order is not guaranteed.
        return Refusal("key_missing", KeyMissing("the message has no key; it must be the subject"))
    if rec.key.decode(errors="replace") != event.subject:
        # Neither value goes into the message: keys and subjects are permit numbers.
        return Refusal("key_mismatch", KeyMismatch("the message key is not the event's subject"))
    return Delivery(rec.topic, rec.partition, rec.offset, rec.timestamp, event,
                    tuple(rec.headers or ()))
