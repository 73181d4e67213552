"""The permit lifecycle published by the work-permit authority (docs/domain.md §2-§3).

Event-carried state: every event carries the permit's full current record plus what
changed, so a consumer never needs an earlier event to apply a later one.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

import pycountry
from pydantic import AfterValidator, BaseModel, Field, model_validator

from schemas.envelope import CloudEvent, Contract

AUTHORITY_SOURCE = "/cn/mohrss/work-permit"
_TYPE = "cn.mohrss.workpermit."

MAX_VALIDITY_MONTHS = 60
"""Five years: the longest period one approval or extension grants (category A, domain §2)."""

EXTENSION_WINDOW = (timedelta(days=30), timedelta(days=90))
"""An extension is applied for between 30 and 90 days before the permit's last day, both
included; with fewer than 30 days left it is refused (Tianjin guidelines, domain §2). Here
because two agencies follow it: the authority decides by it, and the card service times its
reminders by it so that each one comes while the holder can still act."""


_COUNTRIES = frozenset(c.alpha_2 for c in pycountry.countries)
"""Every ISO 3166-1 alpha-2 code, read once: a lookup in pycountry per event costs more than
the rest of the record's validation."""


def _iso_country(code: str) -> str:
    if code not in _COUNTRIES:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


PermitNo = Annotated[
    str, Field(pattern=r"^\d{18}$", description="18 digits, one per person for life")
]
CountryCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2"),
    AfterValidator(_iso_country),
]
CreditCode = Annotated[
    str,
    Field(
        pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$",
        description="the employer's unified social credit code (GB 32100-2015 alphabet)",
    ),
]


class Category(StrEnum):
    """A high-end talent, B professional, C other (2017 Service Guide)."""

    A = "A"
    B = "B"
    C = "C"


class PermitStatus(StrEnum):
    """Where a permit is in its lifecycle."""

    LETTER_ISSUED = "letter_issued"
    ACTIVE = "active"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    LAPSED = "lapsed"
    """The notification letter ran out before the permit was issued (no validity ever began)."""


class PermitStandard(StrEnum):
    """Integrated with the social security card, or a pre-2024 physical permit."""

    INTEGRATED = "integrated"
    LEGACY = "legacy"


class CancellationReason(StrEnum):
    """Why a permit was cancelled (docs/domain.md §2, cancellation)."""

    CONTRACT_ENDED = "contract_ended"
    REVOKED = "revoked"
    EMPLOYER_APPLICATION = "employer_application"
    DEATH = "death"
    LOSS_OF_CAPACITY = "loss_of_capacity"
    NATIONALITY_CHANGED = "nationality_changed"
    NEW_EMPLOYER = "new_employer"


class Holder(Contract):
    """The foreigner, as in the passport."""

    name: str = Field(min_length=1, max_length=200, description="as in the passport")
    sex: Literal["F", "M", "X"]
    date_of_birth: date
    nationality: CountryCode
    passport_no: str = Field(min_length=5, max_length=20, pattern=r"^[A-Z0-9]+$")
    passport_expiry: date


class Employer(Contract):
    """The employing organisation."""

    name: str = Field(min_length=1, max_length=300)
    credit_code: CreditCode
    province: str = Field(min_length=1, max_length=50)
    city: str = Field(min_length=1, max_length=50)


class FamilyMember(Contract):
    """An accompanying family member named on the permit."""

    name: str = Field(min_length=1, max_length=200)
    relationship: Literal["spouse", "child", "parent", "other"]


class PermitRecord(Contract):
    """The permit's full current record, as the authority holds it."""

    permit_no: PermitNo
    status: PermitStatus
    standard: PermitStandard = PermitStandard.INTEGRATED
    holder: Holder
    category: Category
    employer: Employer
    position: str = Field(min_length=1, max_length=200)
    approved_months: int = Field(ge=1, le=MAX_VALIDITY_MONTHS)
    letter_issued_on: date | None = None
    issued_on: date | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    family: tuple[FamilyMember, ...] = ()
    cancelled_on: date | None = None
    cancellation_reason: CancellationReason | None = None

    @model_validator(mode="after")
    def _check_validity(self) -> PermitRecord:
        # An agency decodes the record narrowed to the fields it reads (schemas.audiences):
        # each rule is checked when its fields are there, whichever agency reads it.
        has = _fields_of(type(self))
        period = "valid_from" in has and "valid_until" in has
        if period and (self.valid_from is None) != (self.valid_until is None):
            raise ValueError("valid_from and valid_until are given together or not at all")
        if "status" in has:
            status = self.status
            if status in (PermitStatus.ACTIVE, PermitStatus.EXPIRED) and "valid_until" in has \
                    and self.valid_until is None:
                raise ValueError(f"a permit with status {status} needs valid_from/valid_until")
            if status is PermitStatus.LAPSED and "letter_issued_on" in has \
                    and self.letter_issued_on is None:
                raise ValueError("a lapsed permit needs letter_issued_on: only a letter lapses")
            if status is PermitStatus.CANCELLED and "cancelled_on" in has \
                    and self.cancelled_on is None:
                raise ValueError("a cancelled permit needs cancelled_on")
        if period and self.valid_from is not None and self.valid_until is not None:
            expiry = (self.holder.passport_expiry if "holder" in has
                      and "passport_expiry" in _fields_of(type(self.holder)) else None)
            _check_period(self.valid_from, self.valid_until, expiry)
        return self


@functools.cache
def _fields_of(model: type[BaseModel]) -> frozenset[str]:
    """The fields a (possibly narrowed) model has, looked up once per model."""
    return frozenset(model.model_fields)


def _check_period(valid_from: date, valid_until: date, passport_expiry: date | None) -> None:
    if valid_until <= valid_from:
        raise ValueError(f"valid_until {valid_until} is not after valid_from {valid_from}")
    if passport_expiry is not None and valid_until > passport_expiry:
        raise ValueError(
            f"valid_until {valid_until} is beyond the passport's expiry {passport_expiry}"
        )


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


class FieldChange(Contract):
    """One field a PermitChanged event changed, with its old and new value as text."""

    field: Literal["holder.name", "holder.passport_no", "holder.passport_expiry", "position",
                   "category"]
    old: str
    new: str


# Payloads -------------------------------------------------------------------------------


class PermitPayload(Contract):
    """What every permit lifecycle event carries: the full current record."""

    permit: PermitRecord


class NotificationLetterIssuedData(PermitPayload):
    """The online application was approved; the letter replaces the post-entry card."""

    letter_no: str = Field(min_length=1, max_length=40)


class NotificationLetterLapsedData(PermitPayload):
    """The letter's validity ran out before the permit was issued after entry."""

    letter_valid_until: date = Field(description="the letter's last valid day")


class PermitIssuedData(PermitPayload):
    """The permit became active after entry, with its validity."""


class PermitExtendedData(PermitPayload):
    """The validity was extended."""

    previous_valid_until: date


class PermitChangedData(PermitPayload):
    """Name, passport number, position or category changed."""

    changes: tuple[FieldChange, ...] = Field(min_length=1)


class PermitCancelledData(PermitPayload):
    """The permit was cancelled."""

    reason: CancellationReason


class PermitExpiredData(PermitPayload):
    """The permit reached its end without extension."""


class LegacyPermitRegisteredData(PermitPayload):
    """A pre-integration physical permit, honoured as it is ("No Change, No Replacement")."""


class PermitMigratedData(PermitPayload):
    """A legacy permit moved onto the integrated standard."""

    previous_standard: PermitStandard


# Events ---------------------------------------------------------------------------------

P = TypeVar("P", bound=PermitPayload)


class PermitLifecycleEvent(CloudEvent[P], Generic[P]):
    """Subject: the number of the permit whose record the event carries."""

    VERSION: ClassVar[int] = 2
    """v2: the record's status may be `lapsed` (schemas/compatibility.toml)."""

    def subject_rule(self) -> tuple[str, str]:
        """The permit number in `data.permit`."""
        return "data.permit.permit_no", self.data.permit.permit_no


class NotificationLetterIssued(PermitLifecycleEvent[NotificationLetterIssuedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "NotificationLetterIssued"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.NotificationLetterIssued"]


class NotificationLetterLapsed(PermitLifecycleEvent[NotificationLetterLapsedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "NotificationLetterLapsed"
    VERSION: ClassVar[int] = 1
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.NotificationLetterLapsed"]


class PermitIssued(PermitLifecycleEvent[PermitIssuedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitIssued"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.PermitIssued"]


class PermitExtended(PermitLifecycleEvent[PermitExtendedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitExtended"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.PermitExtended"]


class PermitChanged(PermitLifecycleEvent[PermitChangedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitChanged"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.PermitChanged"]


class PermitCancelled(PermitLifecycleEvent[PermitCancelledData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitCancelled"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.PermitCancelled"]


class PermitExpired(PermitLifecycleEvent[PermitExpiredData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitExpired"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.PermitExpired"]


class LegacyPermitRegistered(PermitLifecycleEvent[LegacyPermitRegisteredData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "LegacyPermitRegistered"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.LegacyPermitRegistered"]


class PermitMigrated(PermitLifecycleEvent[PermitMigratedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "PermitMigrated"
    SOURCE: ClassVar[str] = AUTHORITY_SOURCE
    type: Literal["cn.mohrss.workpermit.PermitMigrated"]


PermitEvent = (
    NotificationLetterIssued
    | PermitIssued
    | PermitExtended
    | PermitChanged
    | PermitCancelled
    | PermitExpired
    | LegacyPermitRegistered
    | PermitMigrated
    | NotificationLetterLapsed
)

PERMIT_EVENT_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    NotificationLetterIssued,
    PermitIssued,
    PermitExtended,
    PermitChanged,
    PermitCancelled,
    PermitExpired,
    LegacyPermitRegistered,
    PermitMigrated,
    NotificationLetterLapsed,
)
