"""The CloudEvents 1.0 structured-mode JSON envelope every hub message travels in."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

CONTENT_TYPE = "application/cloudevents+json"
"""The Kafka `content-type` header of a structured-mode CloudEvent."""

SCHEMA_URN = "urn:permit-hub:schema"

SPECVERSION = "1.0"
"""The CloudEvents version every hub message is, required in each (CloudEvents 1.0 §3.1)."""

TRACEPARENT_PATTERN = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
"""A W3C `traceparent` of version 00 with a non-zero trace id and parent id."""

MAX_SEQUENCE = 2**31 - 1
"""The largest `sequence`: a positive 32-bit integer, what every view's `integer` column holds.

Checked by the model (so by the codec and by `create`), not stated in the JSON Schema: a
`maximum` there is a tighter bound for readers than the committed versions give writers, which
FULL_TRANSITIVE refuses (BACKWARD). docs/domain.md §3.
"""

# The envelope rules every reader enforces beyond the JSON Schema, by their error types; the
# codec turns each into the dead-letter reason of the same name (`schemas.codec.DecodeFailure`).
SOURCE_MISMATCH = "source_mismatch"
SUBJECT_MISMATCH = "subject_mismatch"
SEQUENCE_OUT_OF_RANGE = "sequence_out_of_range"
SPECVERSION_MISSING = "specversion_missing"
SPECVERSION_MISSING_MESSAGE = "specversion is required (CloudEvents 1.0)"

D = TypeVar("D", bound=BaseModel)


def _require_kind(schema: dict[str, Any]) -> None:
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


class Contract(BaseModel):
    """Base of every payload model: immutable, and tolerant of fields it does not know.

    Ignoring unknown fields is the tolerant-reader rule: a producer may add an optional
    field without breaking readers that were built before it.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class Variant(Contract):
    """One alternative of a union told apart by `kind`.

    `kind` has a default so Python code need not repeat it, but on the wire it is
    required: the decoder cannot pick the alternative without it, so the schema says so.
    """

    model_config = ConfigDict(json_schema_extra=_require_kind)


class CloudEvent(Contract, Generic[D]):
    """A CloudEvents 1.0 envelope around one event's data.

    Subclasses pin `type` to a literal and `data` to the payload model; `EVENT_TYPE`,
    `SOURCE` and `VERSION` name the contract, and `subject_rule` says where the subject
    comes from. Beyond the JSON Schema, an event is valid only with its type's `SOURCE`, a
    `sequence` of at most MAX_SEQUENCE and the subject its rule names (`_check_envelope`):
    those rules cannot be schema keywords without breaking FULL_TRANSITIVE compatibility.
    """

    EVENT_TYPE: ClassVar[str]
    SOURCE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    # Required on read (`_check_envelope`); the default is only what the committed JSON
    # Schemas have always said (a required property there would fail FULL_TRANSITIVE).
    specversion: str = Field(default=SPECVERSION, pattern=r"^1\.0$")
    # Required on the wire (CloudEvents 1.0): a reader must never invent an id, or a
    # republished message would look new to the handlers' idempotency check.
    id: uuid.UUID = Field(description="unique per event")
    source: str = Field(min_length=1, description="the publishing agency, a URI reference")
    type: str
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str = Field(min_length=1, description="the permit number the event is about")
    datacontenttype: str = "application/json"
    dataschema: str = Field(min_length=1, description="id and version of the data's schema")
    sequence: int = Field(
        ge=1, description="per subject and source, +1 on every event: ordering and idempotency"
    )
    # The CloudEvents distributed-tracing extension: the W3C trace context of the work that
    # caused the event (a command, a request, the event an outcome answers), so one
    # request is followed across agencies by its trace id. Optional, and absent rather
    # than null when there is none; no reader's decision depends on it.
    # A malformed value is dropped on read, as W3C Trace Context asks (a new trace starts
    # there), never a reason to refuse the event.
    traceparent: str | None = Field(
        default=None, exclude_if=lambda v: v is None,
        json_schema_extra={"pattern": TRACEPARENT_PATTERN.pattern},
        description="W3C trace context (version 00): trace id, parent span id, flags")
    tracestate: str | None = Field(
        default=None, exclude_if=lambda v: v is None, json_schema_extra={"maxLength": 512},
        description="W3C vendor trace state, passed on with its traceparent")
    data: D

    @field_validator("traceparent", mode="before")
    @classmethod
    def _tolerate_traceparent(cls, value: Any) -> str | None:
        return value if isinstance(value, str) and TRACEPARENT_PATTERN.match(value) else None

    @field_validator("tracestate", mode="before")
    @classmethod
    def _tolerate_tracestate(cls, value: Any, info: ValidationInfo) -> str | None:
        # A trace state belongs to its traceparent: without a valid one it is ignored.
        # (`traceparent` is declared, so validated, before it, and is None unless valid.)
        if info.data.get("traceparent") is None:
            return None
        return value if isinstance(value, str) and len(value) <= 512 else None

    def subject_rule(self) -> tuple[str, str] | None:
        """Where this type's contract takes the subject from, and its value; None: not fixed."""
        return None

    @model_validator(mode="after")
    def _check_envelope(self) -> Self:
        """The rules the schema cannot state; messages name rules, never the values.

        `specversion` is required on read, yet not a `required` in the JSON Schema: the
        committed versions leave it optional, and a reader requiring more than an earlier
        writer's schema is BACKWARD-incompatible, as with MAX_SEQUENCE. Every writer of those
        versions wrote it all the same (pydantic writes defaults, CloudEvents 1.0 requires it
        of every other producer), so only a message that is not a CloudEvent lacks it. It is
        checked here, once the fields are valid, and not before them: a `before` model
        validator makes pydantic build the whole message as Python objects and validate those
        instead of the JSON, a large share of the decoding time. `Codec` still reports a
        missing one as the message's only error.
        """
        if "specversion" not in self.model_fields_set:
            raise PydanticCustomError(SPECVERSION_MISSING, SPECVERSION_MISSING_MESSAGE)
        if self.source != self.SOURCE:
            raise PydanticCustomError(SOURCE_MISMATCH, "source must be {source} for this type",
                                      {"source": self.SOURCE})
        if self.sequence > MAX_SEQUENCE:
            raise PydanticCustomError(SEQUENCE_OUT_OF_RANGE, "sequence must be at most {max}",
                                      {"max": MAX_SEQUENCE})
        rule = self.subject_rule()
        if rule is not None and self.subject != rule[1]:
            raise PydanticCustomError(SUBJECT_MISMATCH, "subject must be {where}",
                                      {"where": rule[0]})
        return self

    @classmethod
    def schema_id(cls) -> str:
        """The `dataschema` value for this event type."""
        return f"{SCHEMA_URN}:{cls.EVENT_TYPE}:{cls.VERSION}"

    @classmethod
    def create(cls, *, subject: str, sequence: int, data: D, **extra: Any) -> CloudEvent[D]:
        """A new event of this type, with a fresh id and the current time."""
        extra.setdefault("id", uuid.uuid4())
        return cls(
            specversion=SPECVERSION,
            source=cls.SOURCE,
            type=cls.EVENT_TYPE,
            subject=subject,
            dataschema=cls.schema_id(),
            sequence=sequence,
            data=data,
            **extra,
        )

    def to_json(self) -> bytes:
        """The event as the bytes of a Kafka message value."""
        return self.model_dump_json().encode()
