"""The work-permit authority's decisions, as pure functions of a record and a command.

Each function checks the rules of docs/domain.md §2 and returns the event payload carrying the
permit's new full record; the store wraps it in an envelope with the next sequence.
"""

from __future__ import annotations

from datetime import date, timedelta

from schemas.permits import (
    EXTENSION_WINDOW,
    MAX_VALIDITY_MONTHS,
    CancellationReason,
    Category,
    Employer,
    FamilyMember,
    FieldChange,
    Holder,
    LegacyPermitRegisteredData,
    NotificationLetterIssuedData,
    NotificationLetterLapsedData,
    PermitCancelledData,
    PermitChangedData,
    PermitExpiredData,
    PermitExtendedData,
    PermitIssuedData,
    PermitMigratedData,
    PermitPayload,
    PermitRecord,
    PermitStandard,
    PermitStatus,
    add_months,
)

LETTER_VALIDITY_MONTHS = 6
"""A Notification Letter is valid 6 months from its issue (2017 Notification Letter template
[C], docs/domain.md §2; the post-2024 rule is unconfirmed [U], so this is the one place to
correct it): the holder must enter, and the permit start, within them; after them the
authority's calendar lapses the letter (`lapse`)."""

ENTRY_DISTANCE = timedelta(days=30)
"""How far the start of a permit (the holder's entry) may lie from the day it is issued:
B/C holders verify their documents on site within 30 days of entry, so an issue dated
further from the entry than that is a mistyped date, not a late verification."""


class PermitRuleViolation(ValueError):
    """A command the rules do not allow, with the reason in words."""


def _require_status(record: PermitRecord, *allowed: PermitStatus) -> None:
    if record.status not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise PermitRuleViolation(
            f"permit {record.permit_no} is {record.status.value}; this needs {names}"
        )


def _require_dated_after_record(record: PermitRecord, today: date, action: str) -> None:
    """A decision is dated no earlier than the decisions already on the record: a
    cancellation dated 2001 on a permit issued in 2025 is a wrong date, not history."""
    for done, day in (("its letter was issued", record.letter_issued_on),
                      ("it was issued", record.issued_on)):
        if day is not None and today < day:
            raise PermitRuleViolation(
                f"{action} of permit {record.permit_no} is dated {today}, before {done} on {day}"
            )


def letter_valid_until(record: PermitRecord) -> date | None:
    """The last day the permit's Notification Letter can be used to enter and start the
    permit (None: the permit has no letter, e.g. a legacy one)."""
    if record.letter_issued_on is None:
        return None
    return add_months(record.letter_issued_on, LETTER_VALIDITY_MONTHS) - timedelta(days=1)


def notification_letter(
    *,
    permit_no: str,
    letter_no: str,
    holder: Holder,
    employer: Employer,
    category: Category,
    position: str,
    approved_months: int,
    family: tuple[FamilyMember, ...] = (),
    today: date,
) -> NotificationLetterIssuedData:
    """Approve an overseas application: the notification letter is the permit's start."""
    if today > holder.passport_expiry:
        raise PermitRuleViolation(
            f"the passport expired on {holder.passport_expiry}, before the letter's date {today}"
        )
    record = PermitRecord(
        permit_no=permit_no,
        status=PermitStatus.LETTER_ISSUED,
        holder=holder,
        category=category,
        employer=employer,
        position=position,
        approved_months=approved_months,
        letter_issued_on=today,
        family=family,
    )
    return NotificationLetterIssuedData(permit=record, letter_no=letter_no)


def reapply(
    record: PermitRecord,
    *,
    letter_no: str,
    holder: Holder,
    employer: Employer,
    category: Category,
    position: str,
    approved_months: int,
    family: tuple[FamilyMember, ...] = (),
    today: date,
) -> NotificationLetterIssuedData:
    """Approve a new application by a former holder under the number they keep for life.

    The permit must have ended (cancelled, expired, or its letter lapsed): a person holds
    one permit at a time, and a new employer means cancel, then apply anew. The applicant
    must be its holder: the same date of birth and nationality (a passport renewal changes
    the passport, not the person; a change of nationality ended the permit with reason
    `nationality_changed`, and only then may the nationality differ). A holder who died
    has no new application. The new period starts like any: a letter, no validity yet.
    """
    _require_status(record, PermitStatus.CANCELLED, PermitStatus.EXPIRED, PermitStatus.LAPSED)
    _require_dated_after_record(record, today, "the new application")
    no = record.permit_no
    if record.cancelled_on is not None and today < record.cancelled_on:
        raise PermitRuleViolation(
            f"the new application under permit {no} is dated {today}, before its"
            f" cancellation on {record.cancelled_on}")
    if record.status is PermitStatus.EXPIRED and record.valid_until is not None \
            and today <= record.valid_until:
        raise PermitRuleViolation(
            f"the new application under permit {no} is dated {today}, before its end on"
            f" {record.valid_until}")
    reason = record.cancellation_reason
    if reason is CancellationReason.DEATH:
        raise PermitRuleViolation(f"permit {no} was cancelled on its holder's death")
    same_nationality = (holder.nationality == record.holder.nationality
                        or reason is CancellationReason.NATIONALITY_CHANGED)
    if holder.date_of_birth != record.holder.date_of_birth or not same_nationality:
        # Which of the two differs is not said: both are the holder's personal data.
        raise PermitRuleViolation(
            f"the applicant is not the former holder of permit {no}: a permit number is kept"
            " only by the person it was issued to")
    return notification_letter(
        permit_no=no, letter_no=letter_no, holder=holder, employer=employer,
        category=category, position=position, approved_months=approved_months,
        family=family, today=today)


def issue(record: PermitRecord, *, valid_from: date, today: date) -> PermitIssuedData:
    """Activate the permit after entry for its approved period."""
    _require_status(record, PermitStatus.LETTER_ISSUED)
    _require_dated_after_record(record, today, "the issue")
    _require_entry_within_letter(record, valid_from)
    if abs(valid_from - today) > ENTRY_DISTANCE:
        raise PermitRuleViolation(
            f"permit {record.permit_no} would start on {valid_from}, more than"
            f" {ENTRY_DISTANCE.days} days from its issue on {today}"
        )
    until = add_months(valid_from, record.approved_months) - timedelta(days=1)
    until = min(until, record.holder.passport_expiry)
    new = _evolve(
        record,
        status=PermitStatus.ACTIVE,
        issued_on=today,
        valid_from=valid_from,
        valid_until=until,
    )
    return PermitIssuedData(permit=new)


def _require_entry_within_letter(record: PermitRecord, valid_from: date) -> None:
    """The permit starts on entry, which the letter allows from its issue to its lapse."""
    last = letter_valid_until(record)
    if record.letter_issued_on is None or last is None:
        return  # no letter date on the record: nothing to hold the entry against
    if valid_from < record.letter_issued_on:
        raise PermitRuleViolation(
            f"permit {record.permit_no} cannot start on {valid_from}, before its letter was"
            f" issued on {record.letter_issued_on}"
        )
    if valid_from > last:
        raise PermitRuleViolation(
            f"permit {record.permit_no} cannot start on {valid_from}: its notification letter"
            f" was valid until {last}"
        )


def extend(record: PermitRecord, *, new_valid_until: date, today: date) -> PermitExtendedData:
    """Extend an active permit, applied for 30-90 days before it expires."""
    _require_status(record, PermitStatus.ACTIVE)
    _require_dated_after_record(record, today, "the extension")
    assert record.valid_until is not None
    left = record.valid_until - today
    if left < EXTENSION_WINDOW[0]:
        raise PermitRuleViolation(
            f"permit {record.permit_no} expires in {left.days} days; an extension must be "
            f"applied for at least {EXTENSION_WINDOW[0].days} days before expiry"
        )
    if left > EXTENSION_WINDOW[1]:
        raise PermitRuleViolation(
            f"permit {record.permit_no} expires in {left.days} days; an extension can be "
            f"applied for at most {EXTENSION_WINDOW[1].days} days before expiry"
        )
    if new_valid_until <= record.valid_until:
        raise PermitRuleViolation("the new end must be after the current end")
    if new_valid_until > add_months(record.valid_until, MAX_VALIDITY_MONTHS):
        raise PermitRuleViolation("an extension grants at most five years")
    new = _evolve(record, valid_until=new_valid_until, standard=PermitStandard.INTEGRATED)
    return PermitExtendedData(permit=new, previous_valid_until=record.valid_until)


def change(
    record: PermitRecord,
    *,
    name: str | None = None,
    passport_no: str | None = None,
    passport_expiry: date | None = None,
    position: str | None = None,
    category: Category | None = None,
) -> PermitChangedData:
    """Change name, passport, position or category; a new employer is a new permit."""
    _require_status(record, PermitStatus.LETTER_ISSUED, PermitStatus.ACTIVE)
    holder_updates = {
        k: v
        for k, v in {
            "name": name,
            "passport_no": passport_no,
            "passport_expiry": passport_expiry,
        }.items()
        if v is not None and v != getattr(record.holder, k)
    }
    updates: dict[str, object] = {}
    if position is not None and position != record.position:
        updates["position"] = position
    if category is not None and category != record.category:
        updates["category"] = category
    changes = tuple(
        FieldChange(field=f"holder.{k}", old=str(getattr(record.holder, k)), new=str(v))
        for k, v in holder_updates.items()
    ) + tuple(
        FieldChange(field=k, old=str(getattr(record, k)), new=str(v)) for k, v in updates.items()
    )
    if not changes:
        raise PermitRuleViolation("the change request changes nothing")
    holder = record.holder.model_copy(update=holder_updates)
    new = _evolve(
        record,
        holder=Holder.model_validate(holder.model_dump()),
        standard=PermitStandard.INTEGRATED,
        **updates,
    )
    return PermitChangedData(permit=new, changes=changes)


def cancel(record: PermitRecord, *, reason: CancellationReason, today: date) -> PermitCancelledData:
    """Cancel a permit that is not already cancelled or expired, on a day it still runs."""
    _require_status(record, PermitStatus.LETTER_ISSUED, PermitStatus.ACTIVE)
    _require_dated_after_record(record, today, "the cancellation")
    if record.valid_until is not None and today > record.valid_until:
        raise PermitRuleViolation(
            f"permit {record.permit_no} ended on {record.valid_until}; on {today} it expires,"
            " it is not cancelled"
        )
    new = _evolve(
        record, status=PermitStatus.CANCELLED, cancelled_on=today, cancellation_reason=reason
    )
    return PermitCancelledData(permit=new, reason=reason)


def expire(record: PermitRecord, *, today: date) -> PermitExpiredData:
    """Mark an active permit expired once its end has passed without extension."""
    _require_status(record, PermitStatus.ACTIVE)
    _require_dated_after_record(record, today, "the expiry")
    assert record.valid_until is not None
    if today <= record.valid_until:
        raise PermitRuleViolation(
            f"permit {record.permit_no} is valid until {record.valid_until}; not expired on {today}"
        )
    return PermitExpiredData(permit=_evolve(record, status=PermitStatus.EXPIRED))


def lapse(record: PermitRecord, *, today: date) -> NotificationLetterLapsedData:
    """A letter not followed by the permit within its validity lapses on the day after its
    last valid day: the permit never started, and the holder can no longer enter on it."""
    _require_status(record, PermitStatus.LETTER_ISSUED)
    _require_dated_after_record(record, today, "the lapse")
    last = letter_valid_until(record)
    if last is None:
        raise PermitRuleViolation(f"permit {record.permit_no} has no letter to lapse")
    if today <= last:
        raise PermitRuleViolation(
            f"the notification letter of permit {record.permit_no} is valid until {last};"
            f" it does not lapse on {today}"
        )
    return NotificationLetterLapsedData(permit=_evolve(record, status=PermitStatus.LAPSED),
                                        letter_valid_until=last)


def legacy(record: PermitRecord) -> LegacyPermitRegisteredData:
    """Register a pre-integration physical permit exactly as it is."""
    if record.standard is not PermitStandard.LEGACY:
        raise PermitRuleViolation("a legacy registration needs standard=legacy")
    return LegacyPermitRegisteredData(permit=record)


def migrate(record: PermitRecord) -> PermitMigratedData:
    """Move a legacy permit onto the integrated standard ("Reissue Electronic Work Permit")."""
    _require_status(record, PermitStatus.ACTIVE)
    if record.standard is not PermitStandard.LEGACY:
        raise PermitRuleViolation(f"permit {record.permit_no} is already integrated")
    new = _evolve(record, standard=PermitStandard.INTEGRATED)
    return PermitMigratedData(permit=new, previous_standard=PermitStandard.LEGACY)


def _evolve(record: PermitRecord, **updates: object) -> PermitRecord:
    """A copy with updates, validated again so every rule holds on the new record."""
    return PermitRecord.model_validate({**record.model_dump(), **updates})


__all__ = [
    "LegacyPermitRegisteredData",
    "NotificationLetterIssuedData",
    "NotificationLetterLapsedData",
    "PermitCancelledData",
    "PermitChangedData",
    "PermitExpiredData",
    "PermitExtendedData",
    "PermitIssuedData",
    "PermitMigratedData",
    "PermitPayload",
    "PermitRuleViolation",
    "cancel",
    "change",
    "expire",
    "extend",
    "issue",
    "lapse",
    "legacy",
    "letter_valid_until",
    "migrate",
    "notification_letter",
    "reapply",
]
