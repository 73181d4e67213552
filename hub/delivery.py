"""What the runtime hands an agency: a Kafka record accepted as an event, and how to accept one.

The consumer and `hub replay` accept records through the same function, so a record the
live view dead-letters is exactly one a rebuilt view leaves out. The order of the checks:
the signature first (nothing unauthenticated is parsed further than its JWS header), then
the contract (decoding), then the signer's right to emit the type, then the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord

from hub.db import Connection
from hub.redaction import NoPersonalData
from hub.signing import Unauthenticated, Verifier
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
    value: bytes = b""
    """The record's exact bytes (what its signature covers)."""
    signer: str = ""
    """Whose verified signature the record carries."""
    kid: str = ""
    """The id of the key that signature was verified with."""

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


class KeyMissing(NoPersonalData, ValueError):
    """The record has no key, so nothing placed it on its subject's partition."""


class KeyMismatch(NoPersonalData, ValueError):
    """The record's key is not the event's subject (which the key must be, for ordering)."""


def accept(
    rec: ConsumerRecord, codec: Codec, verifier: Verifier,
    proven: tuple[bytes, str] | None = None,
) -> Delivery | Refusal:
    """Verify, decode and check a record: the one acceptance rule of every reader.

    `proven`: the evidence log's digest and JWS of this record's position, when this
    agency verified and applied it before (see `Verifier.verify`)."""
    value = rec.value or b""
    try:
        key = verifier.verify(rec.headers, value, proven)
        signer = key.signer
    except Unauthenticated as exc:
        return Refusal("unauthenticated", exc)
    try:
        event = codec.decode(value)
    except DecodeError as exc:
        return Refusal(exc.failure.value, exc)
    try:
        verifier.check_type(signer, event.type)
    except Unauthenticated as exc:
        return Refusal("unauthenticated", exc)
    if rec.key is None:
        # A keyless record lands on any partition: its subject's order is not guaranteed.
        return Refusal("key_missing", KeyMissing("the message has no key; it must be the subject"))
    if rec.key.decode(errors="replace") != event.subject:
        # Neither value goes into the message: keys and subjects are permit numbers.
        return Refusal("key_mismatch", KeyMismatch("the message key is not the event's subject"))
    return Delivery(rec.topic, rec.partition, rec.offset, rec.timestamp, event,
                    tuple(rec.headers or ()), value, signer, key.kid)
