"""Public security's residence-permit rules, as pure functions of what it knows.

Sources (docs/domain.md §2, public security): Exit-Entry Administration Law art. 30 (apply
within 30 days of entry; validity 90 days to 5 years) and art. 32 (extension applied for at
least 30 days before expiry) [C]; the residence permit never runs beyond the work permit
[L, and a hub rule]; legacy permits are honoured as they are, but have no e-card QR code
until they move onto the integrated standard [C]. The deadline for cancelling a residence
permit after the work permit's cancellation is not known [U]: it is `Policy` data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from schemas.permits import add_months
from schemas.public_security import (
    ApplicationPurpose,
    ResidencePermitAppliedData,
    ResidenceRejection,
)

APPLY_WITHIN_DAYS_OF_ENTRY = 30
"""Art. 30: apply within 30 days of entry [C]."""
MIN_VALIDITY_DAYS = 90
"""Art. 30: at least 90 days [C]."""
MAX_VALIDITY_MONTHS = 60
"""Art. 30: at most 5 years [C]."""
EXTEND_AT_LEAST_DAYS_BEFORE = 30
"""Art. 32: apply for an extension at least 30 days before expiry [C]."""


@dataclass(frozen=True)
class PermitFacts:
    """What public security's view holds about a work permit, for one decision."""

    permit_no: str
    status: str
    standard: str
    valid_from: date | None
    valid_until: date | None


@dataclass(frozen=True)
class ResidenceFacts:
    """The residence permit public security issued on a work permit, if any."""

    residence_permit_no: str
    status: str
    valid_from: date
    valid_until: date


@dataclass(frozen=True)
class Refuse:
    """Reject the application."""

    reason: ResidenceRejection
    message: str


@dataclass(frozen=True)
class Grant:
    """Issue a residence permit for this period."""

    valid_from: date
    valid_until: date
    limited_by_work_permit: bool


@dataclass(frozen=True)
class Extend:
    """Extend the residence permit in force to a new end."""

    previous_valid_until: date
    valid_until: date
    limited_by_work_permit: bool


Decision = Refuse | Grant | Extend


def last_day(first_day: date, months: int) -> date:
    """The last day of a period of `months` months starting on `first_day`."""
    return add_months(first_day, months) - timedelta(days=1)


def check_permit(permit: PermitFacts | None, permit_no: str, *, by_token: bool) -> Refuse | None:
    """Refuse when the work permit is unknown, not in force, or cannot back a QR token."""
    if permit is None:
        return Refuse(ResidenceRejection.PERMIT_UNKNOWN,
                      f"work permit {permit_no} is not known to public security; check the "
                      "number, or apply again once the permit has been issued")
    if by_token and permit.standard == "legacy":
        return Refuse(ResidenceRejection.LEGACY_PERMIT_NO_TOKEN,
                      f"work permit {permit_no} is a pre-integration permit without an e-card "
                      "QR code; present the permit number instead")
    if permit.status == "letter_issued":
        return Refuse(ResidenceRejection.PERMIT_NOT_ACTIVE,
                      f"work permit {permit_no} is at the notification-letter stage; verify the "
                      "documents on site so that the permit is issued, then apply")
    if permit.status == "lapsed":
        return Refuse(ResidenceRejection.PERMIT_NOT_ACTIVE,
                      f"the notification letter of work permit {permit_no} lapsed before the "
                      "permit was issued; apply once a new application is approved and issued")
    if permit.status == "cancelled":
        return Refuse(ResidenceRejection.PERMIT_CANCELLED, f"work permit {permit_no} is cancelled")
    if permit.status == "expired" or permit.valid_until is None:
        return Refuse(ResidenceRejection.PERMIT_EXPIRED, f"work permit {permit_no} has expired")
    return None


def decide(
    app: ResidencePermitAppliedData, permit: PermitFacts, residence: ResidenceFacts | None
) -> Decision:
    """The decision on an application whose work permit passed `check_permit`."""
    if app.purpose is ApplicationPurpose.EXTENSION:
        return decide_extension(app, permit, residence)
    return decide_first(app, permit, residence)


def decide_first(
    app: ResidencePermitAppliedData, permit: PermitFacts, residence: ResidenceFacts | None
) -> Decision:
    """A first residence permit after entry (art. 30), never beyond the work permit."""
    assert permit.valid_until is not None
    assert permit.valid_from is not None
    if residence is not None and residence.status == "issued":
        return Refuse(ResidenceRejection.ALREADY_ISSUED,
                      f"residence permit {residence.residence_permit_no} is in force until "
                      f"{residence.valid_until}; apply for its extension instead")
    if app.entry_date is None or app.entry_date > app.applied_on:
        return Refuse(ResidenceRejection.ENTRY_DATE_INVALID,
                      "a first application needs the entry date, on or before the "
                      "application date")
    late_by = (app.applied_on - app.entry_date).days - APPLY_WITHIN_DAYS_OF_ENTRY
    if late_by > 0:
        return Refuse(ResidenceRejection.APPLIED_TOO_LATE,
                      f"applied {late_by} days after the {APPLY_WITHIN_DAYS_OF_ENTRY}-day limit "
                      f"from entry on {app.entry_date}")
    start = max(app.applied_on, permit.valid_from)
    refused = _check_range(start, app.requested_until)
    if refused is not None:
        return refused
    until = min(app.requested_until, permit.valid_until)
    if (until - start).days + 1 < MIN_VALIDITY_DAYS:
        return Refuse(ResidenceRejection.WORK_PERMIT_ENDS_TOO_SOON,
                      f"the work permit ends on {permit.valid_until}, fewer than "
                      f"{MIN_VALIDITY_DAYS} days from {start}; extend the work permit first")
    return Grant(start, until, limited_by_work_permit=until < app.requested_until)


def decide_extension(
    app: ResidencePermitAppliedData, permit: PermitFacts, residence: ResidenceFacts | None
) -> Decision:
    """The extension of a residence permit in force (art. 32), up to the work permit's end."""
    assert permit.valid_until is not None
    if residence is None or residence.status != "issued":
        return Refuse(ResidenceRejection.NO_RESIDENCE_PERMIT,
                      f"no residence permit is in force on work permit {permit.permit_no}")
    apply_by = residence.valid_until - timedelta(days=EXTEND_AT_LEAST_DAYS_BEFORE)
    if app.applied_on > apply_by:
        return Refuse(ResidenceRejection.EXTENSION_TOO_LATE,
                      f"residence permit {residence.residence_permit_no} ends on "
                      f"{residence.valid_until}; an extension had to be applied for by {apply_by}")
    if app.requested_until > last_day(residence.valid_until + timedelta(days=1),
                                      MAX_VALIDITY_MONTHS):
        return Refuse(ResidenceRejection.VALIDITY_OUT_OF_RANGE,
                      "an extension grants at most 5 years beyond the current end")
    until = min(app.requested_until, permit.valid_until)
    if until <= residence.valid_until:
        return Refuse(ResidenceRejection.NOTHING_TO_EXTEND,
                      f"the new end would be {until}, not after the current end "
                      f"{residence.valid_until}; the work permit ends on {permit.valid_until}")
    return Extend(residence.valid_until, until, limited_by_work_permit=until < app.requested_until)


def _check_range(start: date, requested_until: date) -> Refuse | None:
    days = (requested_until - start).days + 1
    if days < MIN_VALIDITY_DAYS or requested_until > last_day(start, MAX_VALIDITY_MONTHS):
        return Refuse(ResidenceRejection.VALIDITY_OUT_OF_RANGE,
                      f"the requested period {start} to {requested_until} is not between "
                      f"{MIN_VALIDITY_DAYS} days and 5 years")
    return None


def cancel_by(cancelled_on: date, deadline_days: int | None) -> date | None:
    """The configured deadline to cancel the residence permit, or None for 'promptly'."""
    return None if deadline_days is None else cancelled_on + timedelta(days=deadline_days)


def extension_window(
    residence: ResidenceFacts, permit_valid_until: date
) -> tuple[date, date] | None:
    """After a work-permit extension: (may extend until, apply by), or None if nothing opens."""
    if permit_valid_until <= residence.valid_until or residence.status != "issued":
        return None
    ceiling = last_day(residence.valid_until + timedelta(days=1), MAX_VALIDITY_MONTHS)
    apply_by = residence.valid_until - timedelta(days=EXTEND_AT_LEAST_DAYS_BEFORE)
    return min(permit_valid_until, ceiling), apply_by
