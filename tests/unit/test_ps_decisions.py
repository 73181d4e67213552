"""Decisions by officers at public security, as plain handler calls on the in-memory view.

State machines (docs/domain.md §2 public security, Decisions by officers):

- application: received → issued | extended | rejected | referred; referred → issued |
  rejected, by an officer's `ResidenceApplicationDecided`.
- cancellation case: `ResidencePermitCancellationRequired` opens it (cancellation_required);
  an officer's `ResidencePermitCancellationDecided` closes it (cancelled) →
  `ResidencePermitCancelled`.

A decision on nothing pending is refused (`DecisionRefused`, dead-lettered by the runtime with
its message); the same decision again yields no second outcome.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from consumers.public_security import handlers
from consumers.public_security.handlers import DecisionRefused
from producers.work_permit import domain
from schemas.permits import CancellationReason, PermitCancelled
from schemas.public_security import (
    ResidenceApplicationDecided,
    ResidenceApplicationDecidedData,
    ResidenceApplicationReferred,
    ResidenceApplicationReferredData,
    ResidencePermitCancellationDecided,
    ResidencePermitCancellationDecidedData,
    ResidencePermitCancelled,
    ResidencePermitCancelledData,
    ResidencePermitIssued,
    ResidenceReferralReason,
    ResidenceRejection,
    ResidenceVerdict,
)
from tests.memory_views import MemoryPublicSecurityView
from tests.unit.test_public_security_handlers import (
    ENTRY,
    PERMIT,
    POLICY,
    Authority,
    _first_residence,
    applied,
    apply,
    only,
    rejected,
)

LATE = ENTRY + timedelta(days=40)
DECIDED_AT = datetime(2025, 4, 14, 3, 0, tzinfo=UTC)
OFFICER = "PSB-0417"


def decided(verdict: ResidenceVerdict, application_id: str = "A-late",
            reason: str = "hospital stay after entry documented", **data: Any,
            ) -> ResidenceApplicationDecided:
    """An officer's decision from the desk."""
    fields: dict[str, Any] = {
        "application_id": application_id, "permit_no": PERMIT, "verdict": verdict,
        "officer_id": OFFICER, "decided_at": DECIDED_AT, "reason": reason}
    payload = ResidenceApplicationDecidedData.model_validate(fields | data)
    event = ResidenceApplicationDecided.create(
        subject=payload.permit_no, sequence=1, data=payload)
    assert isinstance(event, ResidenceApplicationDecided)
    return event


async def referred(view: MemoryPublicSecurityView) -> ResidenceApplicationReferredData:
    """A first application 40 days after entry: referred to an officer."""
    Authority(view).issued()
    data = only(await apply(view, applied("A-late", applied_on=LATE)),
                ResidenceApplicationReferred)
    assert isinstance(data, ResidenceApplicationReferredData)
    return data


async def test_a_late_application_is_referred_to_an_officer_not_refused() -> None:
    """More than 30 days after entry: ResidenceApplicationReferred, decided within 15 days."""
    view = MemoryPublicSecurityView()
    data = await referred(view)
    assert data.reason is ResidenceReferralReason.APPLIED_LATE
    assert data.decide_by == LATE + timedelta(days=15)
    assert [(a.outcome, a.referral) for a in view.applications] == [("referred", "applied_late")]
    assert view.residence_of(PERMIT) is None


async def test_an_officer_accepts_a_referred_application_and_it_is_issued_once() -> None:
    """Accepted: issued as the other rules decide; the same decision again: nothing more;
    the opposite decision afterwards: refused, the first stands."""
    view = MemoryPublicSecurityView()
    await referred(view)
    accept = decided(ResidenceVerdict.ACCEPT)
    data = only(await handlers.on_application_decision(accept, view), ResidencePermitIssued)
    assert data.valid_from == LATE
    assert [(a.outcome, a.residence_permit_no) for a in view.applications] == [
        ("issued", data.residence_permit_no)]
    [stored] = view.officer_decisions
    assert (stored.kind, stored.target, stored.verdict, stored.officer_id, stored.decided_at) == (
        "application", "A-late", "accept", OFFICER, DECIDED_AT)
    assert await handlers.on_application_decision(decided(ResidenceVerdict.ACCEPT), view) == []
    with pytest.raises(DecisionRefused, match="decided by an officer already"):
        await handlers.on_application_decision(decided(ResidenceVerdict.REFUSE), view)
    assert len(view.residences) == 1


async def test_an_officer_refuses_a_referred_application_with_the_reason() -> None:
    """Refused: ResidencePermitRejected (applied_too_late), the officer's reason in the text."""
    view = MemoryPublicSecurityView()
    await referred(view)
    refuse = decided(ResidenceVerdict.REFUSE, reason="no cause for the delay was shown")
    data = rejected(await handlers.on_application_decision(refuse, view))
    assert data.reason is ResidenceRejection.APPLIED_TOO_LATE
    assert data.message == f"refused by officer {OFFICER}: no cause for the delay was shown"
    assert [(a.outcome, a.reason) for a in view.applications] == [("rejected", "applied_too_late")]


async def test_an_accepted_referral_still_follows_the_permit() -> None:
    """The work permit was cancelled while the officer looked: rejected, permit_cancelled."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = auth.issued()
    only(await apply(view, applied("A-late", applied_on=LATE)), ResidenceApplicationReferred)
    auth.publish(domain.cancel(permit, reason=CancellationReason.CONTRACT_ENDED,
                               today=LATE + timedelta(days=1)))
    data = rejected(await handlers.on_application_decision(decided(ResidenceVerdict.ACCEPT),
                                                           view))
    assert data.reason is ResidenceRejection.PERMIT_CANCELLED


@pytest.mark.parametrize(("setup", "event", "message"), [
    ("none", decided(ResidenceVerdict.ACCEPT, "A-nobody"), "no application A-nobody"),
    ("issued", decided(ResidenceVerdict.ACCEPT, "A-1"), "not referred to an officer"),
    ("referred", decided(ResidenceVerdict.ACCEPT, permit_no="156000000000000043"),
     "no application A-late on this permit"),
], ids=["unknown-application", "decided-automatically", "another-permit"])
async def test_a_decision_on_nothing_pending_is_refused(
    setup: str, event: ResidenceApplicationDecided, message: str
) -> None:
    """Nothing is stored and nothing published; the runtime dead-letters it with the reason."""
    view = MemoryPublicSecurityView()
    if setup == "referred":
        await referred(view)
    elif setup == "issued":
        Authority(view).issued()
        await apply(view, applied("A-1"))
    before = list(view.applications)
    with pytest.raises(DecisionRefused, match=message):
        await handlers.on_application_decision(event, view)
    assert view.applications == before
    assert view.officer_decisions == []


@pytest.mark.parametrize("naming", ["name", "passport"])
async def test_a_reason_naming_the_holder_is_refused(naming: str) -> None:
    """The free text is bounded and must not carry the holder's personal data."""
    view = MemoryPublicSecurityView()
    await referred(view)
    held = view.permits[PERMIT]
    text = held.holder_name if naming == "name" else held.passport_no.lower()
    with pytest.raises(DecisionRefused, match="names the holder") as refused:
        await handlers.on_application_decision(
            decided(ResidenceVerdict.ACCEPT, reason=f"spoke with {text}"), view)
    assert text not in str(refused.value)
    assert view.officer_decisions == []


@pytest.mark.parametrize(("field", "value"), [
    ("reason", "x" * 201), ("reason", "line one\nline two"), ("reason", "ok"),
    ("officer_id", "Officer Wang"), ("decided_at", datetime(2025, 4, 14, 3, 0)),
])
def test_a_decision_names_an_officer_id_when_and_a_bounded_reason(field: str, value: Any) -> None:
    """Who (a staff id, not a name), when (aware), why (one line of 3 to 200 characters)."""
    fields: dict[str, Any] = {
        "application_id": "A-late", "permit_no": PERMIT, "verdict": "accept",
        "officer_id": OFFICER, "decided_at": DECIDED_AT, "reason": "documented cause"}
    ResidenceApplicationDecidedData.model_validate(fields)
    with pytest.raises(ValidationError):
        ResidenceApplicationDecidedData.model_validate(fields | {field: value})


async def test_a_resubmitted_referred_application_is_a_duplicate() -> None:
    """The same application id again while the officer decides: the referral stands."""
    view = MemoryPublicSecurityView()
    await referred(view)
    again = rejected(await apply(view, applied("A-late", applied_on=LATE)))
    assert again.reason is ResidenceRejection.DUPLICATE_APPLICATION
    assert again.message == "application A-late is with an officer, who decides it"


# cancellation cases -----------------------------------------------------------------------

CANCELLED_ON = date(2025, 6, 1)


def closing(cancelled_on: date = date(2025, 6, 3), residence_permit_no: str = "RP0000000001",
            decided_at: datetime = datetime(2025, 6, 4, 2, 0, tzinfo=UTC),
            ) -> ResidencePermitCancellationDecided:
    """An officer closes the case: cancelled on a date."""
    event = ResidencePermitCancellationDecided.create(
        subject=PERMIT, sequence=1, data=ResidencePermitCancellationDecidedData(
            permit_no=PERMIT, residence_permit_no=residence_permit_no,
            cancelled_on=cancelled_on, officer_id=OFFICER, decided_at=decided_at,
            reason="residence permit withdrawn at the counter"))
    assert isinstance(event, ResidencePermitCancellationDecided)
    return event


async def open_case(view: MemoryPublicSecurityView) -> str:
    """A residence permit whose work permit was cancelled on 1 June 2025: a case is open."""
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    cancel = auth.publish(domain.cancel(permit, reason=CancellationReason.CONTRACT_ENDED,
                                        today=CANCELLED_ON))
    assert isinstance(cancel, PermitCancelled)
    await handlers.on_permit_cancelled(cancel, view, POLICY)
    residence = view.residence_of(PERMIT)
    assert residence is not None
    assert residence.status == "cancellation_required"
    return residence.residence_permit_no


async def test_an_officer_closes_a_cancellation_case_once() -> None:
    """open → closed: ResidencePermitCancelled with the date and the officer; again: nothing."""
    view = MemoryPublicSecurityView()
    number = await open_case(view)
    data = only(await handlers.on_cancellation_decision(closing(), view), ResidencePermitCancelled)
    assert isinstance(data, ResidencePermitCancelledData)
    assert (data.residence_permit_no, data.cancelled_on, data.officer_id) == (
        number, date(2025, 6, 3), OFFICER)
    stored = view.residences[number]
    assert (stored.status, stored.cancelled_on) == ("cancelled", date(2025, 6, 3))
    assert [d.kind for d in view.officer_decisions] == ["cancellation"]
    assert await handlers.on_cancellation_decision(closing(), view) == []
    with pytest.raises(DecisionRefused, match="no open cancellation case"):
        await handlers.on_cancellation_decision(closing(date(2025, 6, 2)), view)


@pytest.mark.parametrize(("event", "message"), [
    (closing(date(2025, 5, 31)), "before 2025-06-01"),
    (closing(date(2025, 6, 5)), "after the decision's day 2025-06-04"),
    (closing(residence_permit_no="RP0000000099"), "no residence permit RP0000000099"),
], ids=["before-the-work-permit-cancellation", "in-the-future", "unknown"])
async def test_a_cancellation_that_cannot_stand_is_refused(
    event: ResidencePermitCancellationDecided, message: str
) -> None:
    """Business dates are checked; the case stays open."""
    view = MemoryPublicSecurityView()
    number = await open_case(view)
    with pytest.raises(DecisionRefused, match=message):
        await handlers.on_cancellation_decision(event, view)
    assert view.residences[number].status == "cancellation_required"
    assert view.officer_decisions == []


async def test_a_residence_permit_without_an_open_case_is_not_cancelled_by_the_desk() -> None:
    """In force, no case: refused (a cancellation follows the work permit's)."""
    view = MemoryPublicSecurityView()
    await _first_residence(view, Authority(view))
    with pytest.raises(DecisionRefused, match="no open cancellation case"):
        await handlers.on_cancellation_decision(closing(date(2025, 3, 20)), view)


@pytest.mark.parametrize(("text", "named"), [
    ("spoke with Wang Xiaoming at the counter", True),
    ("spoke with wang at the counter", True),
    ("passport e12345678 renewed", True),
    ("policy allows a documented delay", False),  # "Li" is a name part too short to match
    ("delay of 12 days excused", False),
])
def test_a_reason_names_the_holder_by_whole_words(text: str, named: bool) -> None:
    """Full name, name parts of three letters or more, passport number; whole words only."""
    from consumers.public_security.rules import names
    assert names(text, "Wang Xiaoming Li", "E12345678") is named
