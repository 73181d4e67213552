"""The CloudEvents 1.0 structured-mode JSON envelope every hub message travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"
"""The Kafka `content-type` header of a structured-mode CloudEvent."""

SCHEMA_URN = "urn:permit-hub:schema"

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
    `SOURCE` and `VERSION` name the contract.
    """

    EVENT_TYPE: ClassVar[str]
    SOURCE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
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
    data: D

    @classmethod
    def schema_id(cls) -> str:
        """The `dataschema` value for this event type."""
        return f"{SCHEMA_URN}:{cls.EVENT_TYPE}:{cls.VERSION}"

    @classmethod
    def create(cls, *, subject: str, sequence: int, data: D, **extra: Any) -> CloudEvent[D]:
        """A new event of this type, with a fresh id and the current time."""
        extra.setdefault("id", uuid.uuid4())
        return cls(
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
