"""Turning Kafka message values into typed events, with a reason when that fails."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from schemas.envelope import (
    SEQUENCE_OUT_OF_RANGE,
    SOURCE_MISMATCH,
    SUBJECT_MISMATCH,
    CloudEvent,
)


class DecodeFailure(StrEnum):
    """Why a message could not become an event; each is a dead-letter reason."""

    UNDECODABLE = "undecodable"
    UNKNOWN_TYPE = "unknown_type"
    SCHEMA = "schema_violation"
    SOURCE = SOURCE_MISMATCH
    """Valid, but from a source other than its type's `SOURCE`."""
    SUBJECT = SUBJECT_MISMATCH
    """Valid, but its subject is not what its data names (`CloudEvent.subject_rule`)."""
    SEQUENCE = SEQUENCE_OUT_OF_RANGE
    """Valid, but its `sequence` is beyond a positive 32-bit integer (`MAX_SEQUENCE`)."""


class DecodeError(Exception):
    """A message value that is not a valid event of a known type."""

    def __init__(self, failure: DecodeFailure, detail: str) -> None:
        super().__init__(f"{failure}: {detail}")
        self.failure = failure
        self.detail = detail


_TAG_ERRORS = {"union_tag_invalid"}  # a `type` no model claims; a missing one is a schema error
_ENVELOPE_RULES = {f.value: f for f in (DecodeFailure.SOURCE, DecodeFailure.SUBJECT,
                                        DecodeFailure.SEQUENCE)}


class Codec:
    """Decodes the event types one consumer understands, in one validation pass."""

    def __init__(self, event_types: Iterable[type[CloudEvent[Any]]]) -> None:
        types = tuple(event_types)
        if not types:
            raise ValueError("a codec needs at least one event type")
        self.types = {t.EVENT_TYPE: t for t in types}
        union: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
        form: Any = Annotated[union, Field(discriminator="type")] if len(types) > 1 else union
        self._adapter: TypeAdapter[CloudEvent[Any]] = TypeAdapter(form)

    def decode(self, value: bytes | None) -> CloudEvent[Any]:
        """The event in `value`, or a DecodeError saying why there is none."""
        if not value:
            raise DecodeError(DecodeFailure.UNDECODABLE, "empty message value")
        try:
            return self._adapter.validate_json(value)
        except ValidationError as exc:
            raise _classify(exc) from None


def _classify(exc: ValidationError) -> DecodeError:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {e["type"] for e in errors}
    if kinds & {"json_invalid", "json_type"}:
        return DecodeError(DecodeFailure.UNDECODABLE, _summary(errors))
    if kinds & _TAG_ERRORS:
        return DecodeError(DecodeFailure.UNKNOWN_TYPE, _summary(errors))
    broken = sorted(kinds & _ENVELOPE_RULES.keys())
    if broken:  # raised only once the schema passed, so it is the one error
        return DecodeError(_ENVELOPE_RULES[broken[0]], _summary(errors))
    return DecodeError(DecodeFailure.SCHEMA, _summary(errors))


def _summary(errors: list[Any], limit: int = 5) -> str:
    parts = []
    for err in errors[:limit]:
        where = ".".join(str(p) for p in err["loc"][1:] if p != "function-after") or "message"
        parts.append(f"{where}: {err['msg']}")
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
