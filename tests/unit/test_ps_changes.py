"""Public security follows the work permit's changes and its later validity periods.

- A change of the holder's name or passport (`PermitChanged`) changes registered particulars
  of the residence permit in force: `ResidencePermitChangeRequired`, the holder applies for
  the change within 10 days (Exit-Entry Administration Law art. 33).
- The permit number is the person's for life: a work permit that becomes active again under
  the same number (a new validity period, its sequence continuing) takes a new residence
  application, and the residence permit of the earlier period becomes history.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from consumers.public_security import handlers
from producers.work_permit import domain
from schemas.permits import (
    CancellationReason,
    PermitChanged,
    PermitIssuedData,
    PermitRecord,
    PermitStatus,
)
from schemas.public_security import (
    ResidencePermitChangeRequired,
    ResidencePermitChangeRequiredData,
    ResidencePermitExtended,
    ResidencePermitIssued,
    ResidencePermitIssuedData,
    ResidenceRejection,
)
from tests.factories import permit_event
from tests.memory_views import MemoryPublicSecurityView
from tests.unit.test_public_security_handlers import (
    PERMIT,
    POLICY,
    Authority,
    _first_residence,
    applied,
    apply,
    extension,
    only,
    rejected,
)

CHANGED_AT = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)
"""1 July in Beijing (UTC+8): the day the change counts from is China's."""


def changed(auth: Authority, permit: PermitRecord, **change: object) -> PermitChanged:
    """The authority's PermitChanged for this change, at CHANGED_AT, projected into the view."""
    data = domain.change(permit, **change)  # type: ignore[arg-type]
    auth.sequences[PERMIT] += 1
    event = permit_event(data, auth.sequences[PERMIT], at=CHANGED_AT)
    auth.view.project(event)
    assert isinstance(event, PermitChanged)
    return event


async def test_a_passport_renewal_requires_the_residence_permit_changed_within_ten_days() -> None:
    """New passport → ResidencePermitChangeRequired naming the particulars, never their values."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    event = changed(auth, permit, passport_no="E12345678", passport_expiry=date(2035, 1, 1))
    data = only(await handlers.on_permit_changed(event, view), ResidencePermitChangeRequired)
    assert isinstance(data, ResidencePermitChangeRequiredData)
    residence = view.residence_of(PERMIT)
    assert residence is not None
    assert data.residence_permit_no == residence.residence_permit_no
    assert data.changed == ("holder.passport_no", "holder.passport_expiry")
    assert (data.changed_on, data.report_by) == (date(2025, 7, 1), date(2025, 7, 11))
    assert "E12345678" not in data.model_dump_json()
    assert (residence.changed_particulars, residence.change_report_by) == (
        ("holder.passport_expiry", "holder.passport_no"), date(2025, 7, 11))
    assert view.permits[PERMIT].passport_no == "E12345678", "the view keeps the new passport"


async def test_a_change_of_name_is_reported_and_earlier_outstanding_ones_stay_listed() -> None:
    """Two changes before the holder reports: the residence permit lists both."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    first = changed(auth, permit, passport_no="E12345678")
    await handlers.on_permit_changed(first, view)
    second = changed(auth, first.data.permit, name="New Name")
    data = only(await handlers.on_permit_changed(second, view), ResidencePermitChangeRequired)
    assert data.changed == ("holder.name",)
    residence = view.residence_of(PERMIT)
    assert residence is not None
    assert residence.changed_particulars == ("holder.name", "holder.passport_no")
    assert view.permits[PERMIT].holder_name == "New Name"


async def test_a_change_of_position_is_not_a_particular_of_the_residence_permit() -> None:
    """Position and category are not on the residence permit: the view follows, nothing else."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    event = changed(auth, permit, position="Chief Engineer")
    assert await handlers.on_permit_changed(event, view) == []
    residence = view.residence_of(PERMIT)
    assert residence is not None
    assert residence.changed_particulars is None


async def test_a_change_without_a_residence_permit_in_force_publishes_nothing() -> None:
    """No residence permit yet: nothing to change (the next application reads the view)."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = auth.issued()
    event = changed(auth, permit, passport_no="E12345678")
    assert await handlers.on_permit_changed(event, view) == []


def _active_again(auth: Authority, permit: PermitRecord, valid_from: date,
                  valid_until: date) -> PermitRecord:
    """The same permit number active again for a new period, its sequence continuing."""
    record = permit.model_copy(update={
        "status": PermitStatus.ACTIVE, "issued_on": valid_from, "valid_from": valid_from,
        "valid_until": valid_until, "cancelled_on": None, "cancellation_reason": None})
    return auth.publish(PermitIssuedData(permit=PermitRecord.model_validate(
        record.model_dump()))).data.permit


async def test_a_permit_active_again_after_expiry_takes_a_new_residence_application() -> None:
    """The earlier residence permit ended with the earlier period: a new one is issued under
    the same work-permit number, the earlier one is kept as expired."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    assert permit.valid_until is not None
    earlier = view.residence_of(PERMIT)
    assert earlier is not None
    auth.publish(domain.expire(permit, today=permit.valid_until + timedelta(days=1)))
    again = _active_again(auth, permit, date(2026, 9, 1), date(2027, 8, 31))
    assert auth.sequences[PERMIT] == 4, "letter, issued, expired, issued again"
    emits = await apply(view, applied("A-2", entry_date=date(2026, 8, 25),
                                      applied_on=date(2026, 9, 2),
                                      requested_until=date(2027, 8, 1)))
    data = only(emits, ResidencePermitIssued)
    assert isinstance(data, ResidencePermitIssuedData)
    assert data.residence_permit_no != earlier.residence_permit_no
    assert (data.valid_from, data.valid_until) == (date(2026, 9, 2), date(2027, 8, 1))
    assert again.valid_until == date(2027, 8, 31)
    assert view.residences[earlier.residence_permit_no].status == "expired"
    current = view.residence_of(PERMIT)
    assert current is not None
    assert current.status == "issued"
    # The new one is the one that follows the permit from now on: an extension applies to it.
    later = await apply(view, extension("L-2", date(2027, 5, 1), date(2027, 8, 31)))
    assert only(later, ResidencePermitExtended).residence_permit_no == data.residence_permit_no


async def test_a_permit_active_again_after_cancellation_takes_a_new_residence_application() -> None:
    """Cancelled (a new employer), then active again under the same number: the earlier
    residence permit's cancellation case stays open, the new application is decided."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    cancel = auth.publish(domain.cancel(permit, reason=CancellationReason.NEW_EMPLOYER,
                                        today=date(2025, 6, 1)))
    await handlers.on_permit_cancelled(cancel, view, POLICY)  # type: ignore[arg-type]
    earlier = view.residence_of(PERMIT)
    assert earlier is not None
    assert earlier.status == "cancellation_required"
    _active_again(auth, permit, date(2025, 6, 10), date(2026, 6, 9))
    emits = await apply(view, applied("A-2", entry_date=date(2025, 6, 5),
                                      applied_on=date(2025, 6, 12),
                                      requested_until=date(2026, 6, 1)))
    data = only(emits, ResidencePermitIssued)
    assert view.residences[earlier.residence_permit_no].status == "cancellation_required"
    current = view.residence_of(PERMIT)
    assert current is not None
    assert current.residence_permit_no == data.residence_permit_no


async def test_a_residence_permit_still_in_force_is_not_issued_twice() -> None:
    """The guard that stays: a first application while one is in force is refused."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    await _first_residence(view, auth)
    emits = await apply(view, applied("A-2"))
    assert rejected(emits).reason is ResidenceRejection.ALREADY_ISSUED
