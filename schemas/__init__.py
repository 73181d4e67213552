"""The hub's contract: event envelopes and payloads, topic names, JSON Schema files.

Pure data, no I/O; every side of the hub imports it.
"""

from schemas import topics
from schemas.codec import Codec, DecodeError, DecodeFailure
from schemas.envelope import CONTENT_TYPE, CloudEvent, Contract
from schemas.permits import (
    PERMIT_EVENT_TYPES,
    CancellationReason,
    Category,
    Employer,
    FamilyMember,
    FieldChange,
    Holder,
    LegacyPermitRegistered,
    NotificationLetterIssued,
    NotificationLetterLapsed,
    PermitCancelled,
    PermitChanged,
    PermitEvent,
    PermitExpired,
    PermitExtended,
    PermitIssued,
    PermitMigrated,
    PermitRecord,
    PermitStandard,
    PermitStatus,
)

__all__ = [
    "CONTENT_TYPE",
    "PERMIT_EVENT_TYPES",
    "CancellationReason",
    "Category",
    "CloudEvent",
    "Codec",
    "Contract",
    "DecodeError",
    "DecodeFailure",
    "Employer",
    "FamilyMember",
    "FieldChange",
    "Holder",
    "LegacyPermitRegistered",
    "NotificationLetterIssued",
    "NotificationLetterLapsed",
    "PermitCancelled",
    "PermitChanged",
    "PermitEvent",
    "PermitExpired",
    "PermitExtended",
    "PermitIssued",
    "PermitMigrated",
    "PermitRecord",
    "PermitStandard",
    "PermitStatus",
    "topics",
]
