"""Turning Kafka message values into typed events, with a reason when that fails."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, from_json

from schemas.envelope import (
    SEQUENCE_OUT_OF_RANGE,
    SOURCE_MISMATCH,
    SPECVERSION_MISSING,
    SPECVERSION_MISSING_MESSAGE,
    SUBJECT_MISMATCH,
    CloudEvent,
)
from schemas.errors import describe_errors, describe_type


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
    """A message value that is not a valid event of a known type.

    Its text names the failure and where, never a value the message carried
    (`schemas.errors`): it is logged and becomes the dead letter's `dlq.error.message`.
    """

    def __init__(self, failure: DecodeFailure, detail: str) -> None:
        super().__init__(f"{failure}: {detail}")
        self.failure = failure
        self.detail = detail


_TAG_ERRORS = {"union_tag_invalid"}  # a `type` no model claims; a missing one is a schema error
_ENVELOPE_RULES = {f.value: f for f in (DecodeFailure.SOURCE, DecodeFailure.SUBJECT,
                                        DecodeFailure.SEQUENCE)}


_SPECVERSION_MISSING: ErrorDetails = {
    "type": SPECVERSION_MISSING, "loc": (), "msg": SPECVERSION_MISSING_MESSAGE, "input": None}


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str) else None


class Codec:
    """Decodes the event types one consumer understands, in one validation pass."""

    def __init__(self, event_types: Iterable[type[CloudEvent[Any]]]) -> None:
        types = tuple(event_types)
        if not types:
            raise ValueError("a codec needs at least one event type")
        self.types = {t.EVENT_TYPE: t for t in types}
        self._namespaces = frozenset(t.rpartition(".")[0] + "." for t in self.types)
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
            raise self._classify(exc, value) from None

    def _classify(self, exc: ValidationError, value: bytes) -> DecodeError:
        errors = exc.errors(include_url=False)
        for err in errors:
            # The first location part is the union's tag (the event type): left out.
            err["loc"] = err["loc"][1:] if len(self.types) > 1 else err["loc"]
        kinds = {e["type"] for e in errors}
        if kinds & {"json_invalid", "json_type"}:
            return DecodeError(DecodeFailure.UNDECODABLE, describe_errors(errors))
        tags = [e.get("ctx", {}).get("tag") for e in errors if e["type"] in _TAG_ERRORS]
        if tags:
            return DecodeError(DecodeFailure.UNKNOWN_TYPE, describe_type(tags[0], self._namespaces))
        if self._lacks_specversion(value):
            # Whatever else is wrong, a message that is not a CloudEvent is refused for that
            # alone (the model checks it only once its fields are valid).
            errors = [_SPECVERSION_MISSING]
            kinds = {SPECVERSION_MISSING}
        broken = sorted(kinds & _ENVELOPE_RULES.keys())
        if broken:  # raised only once the schema passed, so it is the one error
            return DecodeError(_ENVELOPE_RULES[broken[0]], describe_errors(errors))
        return DecodeError(DecodeFailure.SCHEMA, describe_errors(errors))

    def _lacks_specversion(self, value: bytes) -> bool:
        """Whether the message is an object without `specversion`, of a type this codec
        reads (or any, with one type): one the model was chosen for, which it refuses."""
        try:
            document = from_json(value)
        except ValueError:
            return False
        return (isinstance(document, dict) and "specversion" not in document
                and (len(self.types) == 1 or _hashable(document.get("type")) in self.types))
