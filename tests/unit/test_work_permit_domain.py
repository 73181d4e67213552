"""The authority's lifecycle rules (producers/work_permit/domain.py, docs/domain.md §2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from producers.work_permit import domain
from producers.work_permit.domain import PermitRuleViolation
from schemas.permits import (
    MAX_VALIDITY_MONTHS,
    CancellationReason,
    Category,
    FieldChange,
    PermitRecord,
    PermitStandard,
    PermitStatus,
    add_months,
)
from tests.factories import active_record, employer, holder

TODAY = date(2025, 3, 3)
UNTIL = date(2026, 3, 2)
FAR = date(2099, 1, 1)


def letter(months: int = 12, passport_expiry: date = FAR, today: date = TODAY) -> PermitRecord:
    """A notification letter approved for `months`, issued `today` (TODAY unless given)."""
    return domain.notification_letter(
        permit_no="156000000000000001", letter_no="NL1",
        holder=holder(passport_expiry=passport_expiry), employer=employer(),
        category=Category.B, position="Engineer", approved_months=months, today=today).permit


def active(valid_until: date = UNTIL, **overrides: Any) -> PermitRecord:
    """An active integrated permit valid from TODAY until `valid_until`."""
    fields: dict[str, Any] = {"valid_from": TODAY, "valid_until": valid_until,
                              "issued_on": TODAY, "holder": holder(passport_expiry=FAR)}
    return active_record(**(fields | overrides))


def in_status(status: PermitStatus) -> PermitRecord:
    """A permit in this status, otherwise valid."""
    if status is PermitStatus.LETTER_ISSUED:
        return letter()
    if status is PermitStatus.LAPSED:
        return domain.lapse(letter(), today=TODAY + timedelta(days=200)).permit
    if status is PermitStatus.CANCELLED:
        return active(status=status, cancelled_on=TODAY,
                      cancellation_reason=CancellationReason.REVOKED)
    return active(status=status)


# the notification letter and the issue ------------------------------------------------------


def test_a_letter_starts_the_permit_without_a_validity() -> None:
    """Approval abroad: letter_issued, dated today, no validity until the holder enters."""
    record = letter()
    assert record.status is PermitStatus.LETTER_ISSUED
    assert record.letter_issued_on == TODAY
    assert (record.valid_from, record.valid_until) == (None, None)


def test_an_approval_longer_than_five_years_is_refused() -> None:
    """At most 60 months per approval (category A's maximum)."""
    assert letter(MAX_VALIDITY_MONTHS).approved_months == 60
    with pytest.raises(ValueError, match="approved_months"):
        letter(MAX_VALIDITY_MONTHS + 1)


def test_the_issue_activates_the_letter_for_the_approved_months() -> None:
    """Valid from entry to the day before the same date `months` later; issued today."""
    issued = domain.issue(letter(12), valid_from=date(2025, 3, 10), today=date(2025, 3, 11)).permit
    assert issued.status is PermitStatus.ACTIVE
    assert (issued.valid_from, issued.valid_until) == (date(2025, 3, 10), date(2026, 3, 9))
    assert issued.issued_on == date(2025, 3, 11)


def test_the_issue_is_cut_at_the_passports_expiry() -> None:
    """A passport ending before the approved period: the permit ends with the passport."""
    record = letter(24, passport_expiry=date(2026, 1, 31))
    issued = domain.issue(record, valid_from=TODAY, today=TODAY).permit
    assert issued.valid_until == date(2026, 1, 31)


@given(st.integers(1, MAX_VALIDITY_MONTHS), st.dates(date(2020, 1, 1), date(2030, 12, 31)),
       st.integers(1, 4000))
def test_an_issued_permit_never_runs_beyond_the_approval_or_the_passport(
    months: int, valid_from: date, passport_days: int
) -> None:
    """valid_until = min(the approved period's last day, the passport's expiry)."""
    passport = valid_from + timedelta(days=passport_days)
    record = letter(months, passport, today=valid_from)
    issued = domain.issue(record, valid_from=valid_from, today=valid_from).permit
    assert issued.valid_until == min(add_months(valid_from, months) - timedelta(days=1), passport)


# which status allows which decision ---------------------------------------------------------

DECISIONS: dict[str, tuple[Callable[[PermitRecord], object], set[PermitStatus]]] = {
    "issue": (lambda r: domain.issue(r, valid_from=TODAY, today=TODAY),
              {PermitStatus.LETTER_ISSUED}),
    "extend": (lambda r: domain.extend(r, new_valid_until=UNTIL + timedelta(days=365),
                                       today=UNTIL - timedelta(days=60)),
               {PermitStatus.ACTIVE}),
    "change": (lambda r: domain.change(r, position="Lead engineer"),
               {PermitStatus.LETTER_ISSUED, PermitStatus.ACTIVE}),
    "cancel": (lambda r: domain.cancel(r, reason=CancellationReason.CONTRACT_ENDED, today=TODAY),
               {PermitStatus.LETTER_ISSUED, PermitStatus.ACTIVE}),
    "expire": (lambda r: domain.expire(r, today=UNTIL + timedelta(days=1)),
               {PermitStatus.ACTIVE}),
    "lapse": (lambda r: domain.lapse(r, today=UNTIL + timedelta(days=1)),
              {PermitStatus.LETTER_ISSUED}),
}


@pytest.mark.parametrize("status", list(PermitStatus))
@pytest.mark.parametrize("decision", list(DECISIONS))
def test_each_decision_is_allowed_only_from_its_statuses(
    decision: str, status: PermitStatus
) -> None:
    """Issue or lapse a letter; extend and expire an active permit; change or cancel either;
    nothing more for a cancelled, expired or lapsed one."""
    apply, allowed = DECISIONS[decision]
    if status in allowed:
        apply(in_status(status))
    else:
        with pytest.raises(PermitRuleViolation, match=f"is {status.value}; this needs"):
            apply(in_status(status))


# extension ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("days_left", "allowed"), [
    (29, False), (30, True), (60, True), (90, True), (91, False),
])
def test_an_extension_is_applied_for_30_to_90_days_before_expiry(
    days_left: int, allowed: bool
) -> None:
    """The window's ends are included; a day outside either end is refused."""
    today = UNTIL - timedelta(days=days_left)
    if allowed:
        assert domain.extend(active(), new_valid_until=date(2027, 3, 2), today=today)
    else:
        with pytest.raises(PermitRuleViolation, match=f"expires in {days_left} days"):
            domain.extend(active(), new_valid_until=date(2027, 3, 2), today=today)


def test_an_extension_moves_the_end_and_records_the_previous_one() -> None:
    """PermitExtended carries the new end and the end it replaced."""
    data = domain.extend(active(), new_valid_until=date(2027, 3, 2), today=date(2026, 1, 15))
    assert (data.permit.valid_until, data.previous_valid_until) == (date(2027, 3, 2), UNTIL)
    assert data.permit.valid_from == TODAY


def test_an_extension_grants_at_most_five_years_beyond_the_current_end() -> None:
    """Sixty months after the current end is the latest new end."""
    today = UNTIL - timedelta(days=60)
    latest = add_months(UNTIL, MAX_VALIDITY_MONTHS)
    assert domain.extend(active(), new_valid_until=latest, today=today).permit.valid_until == latest
    with pytest.raises(PermitRuleViolation, match="at most five years"):
        domain.extend(active(), new_valid_until=latest + timedelta(days=1), today=today)


def test_an_extension_must_move_the_end_later() -> None:
    """The same or an earlier end is not an extension."""
    with pytest.raises(PermitRuleViolation, match="after the current end"):
        domain.extend(active(), new_valid_until=UNTIL, today=UNTIL - timedelta(days=60))


def test_an_extension_never_runs_beyond_the_passport() -> None:
    """A new end after the passport's expiry is refused."""
    record = active(holder=holder(passport_expiry=date(2026, 12, 31)))
    with pytest.raises(ValueError, match="passport"):
        domain.extend(record, new_valid_until=date(2027, 3, 2), today=UNTIL - timedelta(days=60))


def test_an_extension_moves_a_legacy_permit_onto_the_integrated_standard() -> None:
    """'No Change, No Replacement' ends with the first change: extended means integrated."""
    record = active(standard=PermitStandard.LEGACY)
    data = domain.extend(record, new_valid_until=date(2027, 3, 2), today=UNTIL - timedelta(days=60))
    assert data.permit.standard is PermitStandard.INTEGRATED


@given(st.integers(-30, 200), st.integers(-400, 2200))
def test_any_extension_succeeds_exactly_when_every_rule_holds(
    days_left: int, added_days: int
) -> None:
    """Allowed iff 30 ≤ days left ≤ 90 and the new end is after the current one and within
    five years of it; otherwise PermitRuleViolation."""
    assume(days_left <= (UNTIL - TODAY).days)  # today is within the permit's validity
    today = UNTIL - timedelta(days=days_left)
    new_end = UNTIL + timedelta(days=added_days)
    ok = 30 <= days_left <= 90 and UNTIL < new_end <= add_months(UNTIL, MAX_VALIDITY_MONTHS)
    if ok:
        assert domain.extend(active(), new_valid_until=new_end, today=today).permit.valid_until \
            == new_end
    else:
        with pytest.raises(PermitRuleViolation):
            domain.extend(active(), new_valid_until=new_end, today=today)


# change, cancellation, expiry, legacy ------------------------------------------------------


def test_a_change_lists_each_field_changed_with_old_and_new_values() -> None:
    """Holder fields are prefixed 'holder.'; unchanged values are not listed."""
    record = active()
    data = domain.change(record, name=record.holder.name, passport_no="N12345678",
                         position="Lead engineer")
    assert data.changes == (
        FieldChange(field="holder.passport_no", old=record.holder.passport_no, new="N12345678"),
        FieldChange(field="position", old="Engineer", new="Lead engineer"),
    )
    assert (data.permit.holder.passport_no, data.permit.position) == ("N12345678", "Lead engineer")


def test_a_change_that_changes_nothing_is_refused() -> None:
    """Giving the same values back is not a change."""
    record = active()
    with pytest.raises(PermitRuleViolation, match="changes nothing"):
        domain.change(record, position=record.position, category=record.category)


def test_a_change_puts_a_legacy_permit_on_the_integrated_standard() -> None:
    """Any change ends the legacy standard."""
    data = domain.change(active(standard=PermitStandard.LEGACY), position="Lead engineer")
    assert data.permit.standard is PermitStandard.INTEGRATED


def test_a_new_passport_may_not_end_before_the_permit() -> None:
    """Validity never beyond the passport: a renewal expiring before valid_until is refused."""
    with pytest.raises(ValueError, match="passport"):
        domain.change(active(), passport_no="N12345678", passport_expiry=UNTIL - timedelta(days=1))


def test_a_cancellation_records_the_day_and_the_reason() -> None:
    """Cancelled today for the reason given; the validity stays as it was."""
    data = domain.cancel(active(), reason=CancellationReason.NEW_EMPLOYER, today=date(2025, 9, 30))
    assert data.permit.status is PermitStatus.CANCELLED
    assert (data.permit.cancelled_on, data.permit.cancellation_reason, data.reason) == (
        date(2025, 9, 30), CancellationReason.NEW_EMPLOYER, CancellationReason.NEW_EMPLOYER)
    assert data.permit.valid_until == UNTIL


def test_a_permit_expires_only_after_its_last_day() -> None:
    """Still valid on valid_until; expired from the day after."""
    with pytest.raises(PermitRuleViolation, match="not expired"):
        domain.expire(active(), today=UNTIL)
    assert domain.expire(active(), today=UNTIL + timedelta(days=1)).permit.status is (
        PermitStatus.EXPIRED)


def test_only_a_legacy_record_is_registered_as_legacy() -> None:
    """A legacy registration keeps the record exactly; an integrated one is refused."""
    record = active(standard=PermitStandard.LEGACY)
    assert domain.legacy(record).permit == record
    with pytest.raises(PermitRuleViolation, match="standard=legacy"):
        domain.legacy(active())


def test_migration_moves_an_active_legacy_permit_to_integrated_once() -> None:
    """Migrated: integrated, previous standard legacy; an integrated permit is refused."""
    data = domain.migrate(active(standard=PermitStandard.LEGACY))
    assert (data.permit.standard, data.previous_standard) == (
        PermitStandard.INTEGRATED, PermitStandard.LEGACY)
    with pytest.raises(PermitRuleViolation, match="already integrated"):
        domain.migrate(data.permit)
    cancelled = in_status(PermitStatus.CANCELLED).model_copy(
        update={"standard": PermitStandard.LEGACY})
    with pytest.raises(PermitRuleViolation, match="is cancelled"):
        domain.migrate(cancelled)


# business dates ------------------------------------------------------------------------------


def test_a_letter_is_refused_for_a_passport_already_expired() -> None:
    """No letter dated after the passport's expiry: the holder could not enter on it."""
    with pytest.raises(PermitRuleViolation, match="passport expired on 2025-03-02"):
        letter(passport_expiry=TODAY - timedelta(days=1))


def test_the_letter_is_valid_six_months_from_its_issue() -> None:
    """Through the day before the same date six months on; a legacy permit has no letter."""
    assert domain.letter_valid_until(letter()) == date(2025, 9, 2)
    assert domain.letter_valid_until(active(standard=PermitStandard.LEGACY)) is None


def test_an_issue_dated_before_its_letter_is_refused() -> None:
    """The issue cannot be decided before the approval it activates."""
    with pytest.raises(PermitRuleViolation, match="dated 2025-03-02, before its letter"):
        domain.issue(letter(), valid_from=TODAY, today=TODAY - timedelta(days=1))


def test_a_permit_starts_within_its_letters_validity() -> None:
    """Entry from the letter's issue to its last valid day; before or after it is refused."""
    last = date(2025, 9, 2)
    assert domain.issue(letter(), valid_from=last, today=last).permit.valid_from == last
    with pytest.raises(PermitRuleViolation, match="letter was valid until 2025-09-02"):
        domain.issue(letter(), valid_from=last + timedelta(days=1), today=last)
    with pytest.raises(PermitRuleViolation, match="before its letter was issued"):
        domain.issue(letter(), valid_from=TODAY - timedelta(days=1), today=TODAY)


@pytest.mark.parametrize(("days_from_entry", "allowed"), [
    (-31, False), (-30, True), (0, True), (30, True), (31, False),
])
def test_an_issue_is_dated_within_30_days_of_the_entry(days_from_entry: int,
                                                        allowed: bool) -> None:
    """Verification on site within 30 days of entry; an issue further off is a wrong date."""
    entry = TODAY + timedelta(days=40)
    today = entry + timedelta(days=days_from_entry)
    if allowed:
        assert domain.issue(letter(), valid_from=entry, today=today).permit.issued_on == today
    else:
        with pytest.raises(PermitRuleViolation, match="more than 30 days from its issue"):
            domain.issue(letter(), valid_from=entry, today=today)


def test_an_extension_dated_before_the_issue_is_refused() -> None:
    """Even inside the 30-90 day window, an extension cannot predate the permit's issue."""
    short = active(valid_until=TODAY + timedelta(days=60), issued_on=TODAY + timedelta(days=1))
    with pytest.raises(PermitRuleViolation, match="before it was issued on 2025-03-04"):
        domain.extend(short, new_valid_until=UNTIL, today=TODAY)


@pytest.mark.parametrize("record", [letter(), active(letter_issued_on=TODAY)],
                         ids=["letter", "active"])
def test_a_cancellation_dated_before_the_permit_is_refused(record: PermitRecord) -> None:
    """A cancellation dated 2001 on a permit of 2025 is a wrong date, not history."""
    with pytest.raises(PermitRuleViolation, match="dated 2001-06-01, before"):
        domain.cancel(record, reason=CancellationReason.REVOKED, today=date(2001, 6, 1))


def test_a_permit_past_its_end_expires_and_is_not_cancelled() -> None:
    """On its last day it can be cancelled; the day after, only the expiry applies."""
    data = domain.cancel(active(), reason=CancellationReason.CONTRACT_ENDED, today=UNTIL)
    assert data.permit.cancelled_on == UNTIL
    with pytest.raises(PermitRuleViolation, match="ended on 2026-03-02; on 2026-03-03 it expires"):
        domain.cancel(active(), reason=CancellationReason.CONTRACT_ENDED,
                      today=UNTIL + timedelta(days=1))


# the letter's lapse -------------------------------------------------------------------------


def test_a_letter_lapses_the_day_after_its_six_months() -> None:
    """Issued 2025-03-03, valid until 2025-09-02 (6 months, 2017 template): still valid on its
    last day, lapsed the day after, with no validity ever begun."""
    last = date(2025, 9, 2)
    with pytest.raises(PermitRuleViolation, match="valid until 2025-09-02"):
        domain.lapse(letter(), today=last)
    lapsed = domain.lapse(letter(), today=last + timedelta(days=1))
    assert lapsed.permit.status is PermitStatus.LAPSED
    assert lapsed.letter_valid_until == last
    assert (lapsed.permit.valid_from, lapsed.permit.valid_until) == (None, None)


def test_a_lapsed_record_needs_its_letter() -> None:
    """Only a letter lapses: a lapsed record without the letter's date is refused."""
    with pytest.raises(ValueError, match="lapsed permit needs letter_issued_on"):
        PermitRecord.model_validate(
            {**letter().model_dump(), "status": "lapsed", "letter_issued_on": None})


# a new application by a former holder: the number is the person's for life ----------------


def _reapply(record: PermitRecord, today: date, **holder_overrides: Any) -> PermitRecord:
    person = record.holder.model_copy(update=holder_overrides)
    return domain.reapply(
        record, letter_no="NL2", holder=person, employer=record.employer,
        category=Category.A, position="Director", approved_months=24, today=today).permit


@pytest.mark.parametrize("status", list(PermitStatus))
def test_only_an_ended_permit_takes_a_new_application(status: PermitStatus) -> None:
    """Cancelled, expired or lapsed: a new letter under the same number, with no trace of
    the earlier period's validity; a letter or an active permit: one permit at a time."""
    later = UNTIL + timedelta(days=400)
    ended = {PermitStatus.CANCELLED, PermitStatus.EXPIRED, PermitStatus.LAPSED}
    if status not in ended:
        with pytest.raises(PermitRuleViolation, match=f"is {status.value}; this needs"):
            _reapply(in_status(status), later)
        return
    new = _reapply(in_status(status), later)
    assert new.permit_no == in_status(status).permit_no
    assert new.status is PermitStatus.LETTER_ISSUED
    assert (new.letter_issued_on, new.category, new.approved_months) == (later, Category.A, 24)
    assert (new.issued_on, new.valid_from, new.valid_until) == (None, None, None)
    assert (new.cancelled_on, new.cancellation_reason) == (None, None)


def test_a_renewed_passport_keeps_the_number_another_person_does_not() -> None:
    """The holder is the same date of birth and nationality; the passport may be new."""
    cancelled = in_status(PermitStatus.CANCELLED)
    later = TODAY + timedelta(days=30)
    assert _reapply(cancelled, later, passport_no="NEW12345").holder.passport_no == "NEW12345"
    for other in ({"date_of_birth": date(1990, 1, 2)}, {"nationality": "FR"}):
        with pytest.raises(PermitRuleViolation, match="not the former holder") as caught:
            _reapply(cancelled, later, **other)
        assert str(other[next(iter(other))]) not in str(caught.value)  # no personal data


def test_a_nationality_change_keeps_the_number_a_death_ends_it() -> None:
    """A change of nationality is a cancellation (Shanghai): the person may apply again
    with the new nationality; a permit cancelled on death takes no new application."""
    changed = domain.cancel(active(), reason=CancellationReason.NATIONALITY_CHANGED,
                            today=TODAY).permit
    assert _reapply(changed, TODAY, nationality="FR").holder.nationality == "FR"
    died = domain.cancel(active(), reason=CancellationReason.DEATH, today=TODAY).permit
    with pytest.raises(PermitRuleViolation, match="holder's death"):
        _reapply(died, TODAY)


def test_a_new_application_is_not_dated_before_the_end_of_the_last_period() -> None:
    """Before the cancellation, or before the end of an expired permit: a wrong date."""
    cancelled = domain.cancel(active(), reason=CancellationReason.NEW_EMPLOYER,
                              today=TODAY + timedelta(days=10)).permit
    with pytest.raises(PermitRuleViolation, match="before its cancellation"):
        _reapply(cancelled, TODAY + timedelta(days=9))
    with pytest.raises(PermitRuleViolation, match="before its end"):
        _reapply(in_status(PermitStatus.EXPIRED), UNTIL)
