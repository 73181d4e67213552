"""The Social Security Card service's requests and outcomes.

See docs/domain.md §2 (e-SSC), §4.3 and §4.5-§4.7.

Subjects are the permit number, so every card event about one permit is ordered on one
partition. Two exceptions, both named where they occur: a registration by SSN has the SSN
as subject (the front door does not know the permit number), and so does its rejection
when the SSN is unknown; a reminder sweep has the subject ``expiry-sweep/<date>``.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

from schemas.envelope import CloudEvent, Contract
from schemas.permits import Category, CountryCode, PermitNo, PermitStandard, PermitStatus

CARD_SOURCE = "/cn/mohrss/ssc"
"""The card service: publisher of the outcomes."""
APP_SOURCE = "/cn/mohrss/ssc/app"
"""The e-SSC app back end: the front door publishing registration requests."""
SCHEDULER_SOURCE = "/cn/mohrss/ssc/scheduler"
"""The card service's daily scheduler, which says what day it is."""
_TYPE = "cn.mohrss.ssc."

Ssn = Annotated[
    str, Field(min_length=6, max_length=32, description="opaque; from social insurance")
]
CardId = Annotated[
    str, Field(pattern=r"^ESSC[0-9A-F]{16}$", description="the e-card's id: ESSC + 16 hex digits")
]
PhysicalCardNo = Annotated[
    str, Field(pattern=r"^SSC[0-9A-F]{16}$", description="the physical card's number")
]


class VerificationResult(StrEnum):
    """The outcome of the e-SSC app's real-person (face) verification."""

    PASSED = "passed"
    FAILED = "failed"


class RealPersonVerification(Contract):
    """The real-person check the front door ran before sending the request."""

    method: Literal["face"] = "face"
    result: VerificationResult
    verified_at: AwareDatetime
    reference: str | None = Field(
        default=None, max_length=64, description="the verification provider's transaction id"
    )


class ECardRejectionReason(StrEnum):
    """Why no e-card was issued; each tells the person what to do next (see the message)."""

    VERIFICATION_FAILED = "verification_failed"
    UNKNOWN_PERMIT = "unknown_permit"
    UNKNOWN_SSN = "unknown_ssn"
    NAME_MISMATCH = "name_mismatch"
    PERMIT_CANCELLED = "permit_cancelled"
    PERMIT_EXPIRED = "permit_expired"
    LEGACY_NOT_MIGRATED = "legacy_not_migrated"
    ALREADY_REGISTERED = "already_registered"


class NotificationKind(StrEnum):
    """What a notification to the e-card holder is about."""

    EXPIRY_REMINDER = "expiry_reminder"
    STATUS_CHANGED = "status_changed"


class CardPermitInfo(Contract):
    """The permit's information as the e-card shows it."""

    permit_no: PermitNo
    status: PermitStatus
    standard: PermitStandard
    holder_name: str = Field(min_length=1, max_length=200, description="as in the passport")
    nationality: CountryCode
    category: Category
    employer_name: str = Field(min_length=1, max_length=300)
    position: str = Field(min_length=1, max_length=200)
    valid_from: date | None = None
    valid_until: date | None = None


class QrReference(Contract):
    """The permit QR token issued with the card (`schemas.permit_token` format)."""

    token: str = Field(min_length=1, max_length=1024)
    key_id: str = Field(min_length=1, max_length=64, description="the issuer's published key")
    issued_at: AwareDatetime
    expires_at: AwareDatetime


# Payloads -------------------------------------------------------------------------------


class ECardRegistrationRequestedData(Contract):
    """A foreigner asks for an e-card: name as in the passport, and the permit number or SSN."""

    request_id: uuid.UUID = Field(description="the front door's id; a resubmission reuses it")
    name: str = Field(min_length=1, max_length=200, description="as in the passport")
    permit_no: PermitNo | None = None
    ssn: Ssn | None = None
    verification: RealPersonVerification

    @model_validator(mode="after")
    def _one_identifier(self) -> ECardRegistrationRequestedData:
        if (self.permit_no is None) == (self.ssn is None):
            raise ValueError("give exactly one of permit_no or ssn to name the permit")
        return self


class ECardIssuedData(Contract):
    """The e-card now exists and shows the permit, with a permit QR token."""

    request_id: uuid.UUID
    card_id: CardId
    permit: CardPermitInfo
    ssn: Ssn | None = Field(default=None, description="linked when already assigned")
    qr: QrReference
    issued_at: AwareDatetime


class ECardRejectedData(Contract):
    """No e-card was issued, with a reason code and a message the person can act on."""

    request_id: uuid.UUID
    reason: ECardRejectionReason
    message: str = Field(min_length=1, max_length=600)
    permit_no: PermitNo | None = Field(default=None, description="when the request named one")


class PhysicalCardIssuedData(Contract):
    """A physical card for the SSN; linked to the e-card when the holder has one."""

    permit_no: PermitNo
    ssn: Ssn
    card_no: PhysicalCardNo
    issued_on: date
    ecard_id: CardId | None = Field(default=None, description="the e-card the SSN is linked to")


class PermitNotificationSentData(Contract):
    """A message sent to the e-card holder about the permit."""

    permit_no: PermitNo
    card_id: CardId
    kind: NotificationKind
    trigger: str = Field(min_length=1, max_length=80, description="the event type that caused it")
    status: PermitStatus
    valid_until: date | None = None
    days_left: int | None = Field(default=None, description="for an expiry reminder")
    message: str = Field(min_length=1, max_length=600)
    notified_on: date = Field(description="the day in China (UTC+8) the notice went out")


class ExpiryReminderSweepRequestedData(Contract):
    """The scheduler's daily tick: send the reminders due on `as_of`."""

    as_of: date = Field(description="today in China (UTC+8), as the scheduler knows it")


# Events ---------------------------------------------------------------------------------


class ECardRegistrationRequested(CloudEvent[ECardRegistrationRequestedData]):
    """Subject: the permit number, or the SSN when the request names the permit by SSN."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "ECardRegistrationRequested"
    SOURCE: ClassVar[str] = APP_SOURCE
    type: Literal["cn.mohrss.ssc.ECardRegistrationRequested"]

    def subject_rule(self) -> tuple[str, str]:
        """The permit number the request names, else its SSN."""
        if self.data.permit_no is not None:
            return "data.permit_no", self.data.permit_no
        assert self.data.ssn is not None  # the payload requires one of the two
        return "data.ssn when registering by SSN", self.data.ssn


class ExpiryReminderSweepRequested(CloudEvent[ExpiryReminderSweepRequestedData]):
    """Subject: ``expiry-sweep/<as_of>``."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "ExpiryReminderSweepRequested"
    SOURCE: ClassVar[str] = SCHEDULER_SOURCE
    type: Literal["cn.mohrss.ssc.ExpiryReminderSweepRequested"]

    def subject_rule(self) -> tuple[str, str]:
        """The sweep's day."""
        return "expiry-sweep/<data.as_of>", sweep_subject(self.data.as_of)


class ECardIssued(CloudEvent[ECardIssuedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ECardIssued"
    # v2: the permit's status may be `lapsed` (schemas/compatibility.toml).
    VERSION: ClassVar[int] = 2
    SOURCE: ClassVar[str] = CARD_SOURCE
    type: Literal["cn.mohrss.ssc.ECardIssued"]

    def subject_rule(self) -> tuple[str, str]:
        """The permit the card shows."""
        return "data.permit.permit_no", self.data.permit.permit_no


class ECardRejected(CloudEvent[ECardRejectedData]):
    """Subject: the permit number, or the SSN the request named when it is unknown."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "ECardRejected"
    SOURCE: ClassVar[str] = CARD_SOURCE
    type: Literal["cn.mohrss.ssc.ECardRejected"]

    def subject_rule(self) -> tuple[str, str] | None:
        """The permit number when the rejection names one; else the request's subject (SSN)."""
        if self.data.permit_no is None:
            return None
        return "data.permit_no", self.data.permit_no


class PhysicalCardIssued(CloudEvent[PhysicalCardIssuedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PhysicalCardIssued"
    SOURCE: ClassVar[str] = CARD_SOURCE
    type: Literal["cn.mohrss.ssc.PhysicalCardIssued"]

    def subject_rule(self) -> tuple[str, str]:
        """The permit the SSN was registered under."""
        return "data.permit_no", self.data.permit_no


class PermitNotificationSent(CloudEvent[PermitNotificationSentData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitNotificationSent"
    # v2: the permit's status may be `lapsed` (schemas/compatibility.toml).
    VERSION: ClassVar[int] = 2
    SOURCE: ClassVar[str] = CARD_SOURCE
    type: Literal["cn.mohrss.ssc.PermitNotificationSent"]

    def subject_rule(self) -> tuple[str, str]:
        """The permit the notice is about."""
        return "data.permit_no", self.data.permit_no


def sweep_subject(as_of: date) -> str:
    """The subject of the reminder sweep for one day."""
    return f"expiry-sweep/{as_of.isoformat()}"


CARD_REQUEST_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    ECardRegistrationRequested,
    ExpiryReminderSweepRequested,
)
"""What `card.requests.v1` carries."""

CARD_OUTCOME_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    ECardIssued,
    ECardRejected,
    PhysicalCardIssued,
    PermitNotificationSent,
)
"""What `card.card-events.v1` carries."""

CARD_EVENT_TYPES = CARD_REQUEST_TYPES + CARD_OUTCOME_TYPES
