"""A reviewer's decision on a referred registration (issue 11, item 1), as handler calls.

The request's states (docs/domain.md §2 social insurance): received → registered | rejected
| referred; referred → registered (approve) | rejected (refuse, or the permit ended while
under review). A decision on a request not waiting in review is dead-lettered with why; the
same decision again publishes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from consumers.social_insurance import handlers
from hub.dispatch import Emit
from producers.work_permit import domain
from schemas.permits import CancellationReason, PermitRecord
from schemas.social_insurance import (
    InsuranceRegistered,
    InsuranceRegistrationReferred,
    InsuranceRejection,
    InsuranceReviewDecided,
    InsuranceReviewDecidedData,
    SocialSecurityNumberIssued,
)
from tests.unit.test_social_insurance_handlers import (
    ENTRY,
    PERMIT,
    Agency,
    person,
    registered,
    rejected,
    requested,
    types,
)

R = InsuranceRejection
OFFICER = "SI-0042"


def decided(request_id: str = "R-kr", decision: str = "approve", *,
            permit_no: str = PERMIT, **data: Any) -> InsuranceReviewDecided:
    """The desk's event for a reviewer's decision."""
    fields: dict[str, Any] = {
        "request_id": request_id, "permit_no": permit_no, "decision": decision,
        "officer_id": OFFICER, "decided_at": datetime(2025, 3, 28, 2, tzinfo=UTC),
        "reason": "certificate of coverage checked against the KR agreement",
    }
    event = InsuranceReviewDecided.create(
        subject=permit_no, sequence=1,
        data=InsuranceReviewDecidedData.model_validate(fields | data))
    assert isinstance(event, InsuranceReviewDecided)
    return event


async def referred(agency: Agency, nationality: str = "KR") -> PermitRecord:
    """A Korean's request with a certificate: Korea's exemption is unconfirmed, so referred."""
    permit = agency.authority.issued(person(nationality))
    emits = await agency.request(requested("R-kr", certificate_of_coverage=True))
    assert types(emits) == [InsuranceRegistrationReferred]
    return permit


async def decide(agency: Agency, event: InsuranceReviewDecided) -> Sequence[Emit]:
    return await handlers.on_review_decided(event, agency.view, agency.policy)


async def test_an_approval_registers_with_the_exemptions_found_and_names_the_reviewer() -> None:
    """approve + exempt pension: InsuranceRegistered (the reviewer named) and the SSN; the
    request is no longer pending, so a later request is told it is registered."""
    agency = Agency()
    await referred(agency)
    emits = await decide(agency, decided(exempt=["pension"]))
    assert types(emits) == [InsuranceRegistered, SocialSecurityNumberIssued]
    data = registered(emits)
    assert (data.request_id, data.reviewed_by, data.agreement) == ("R-kr", OFFICER, "KR")
    assert [i.value for i in data.exempt] == ["pension"]
    assert [i.value for i in data.insured] == ["medical", "work_injury", "unemployment",
                                                "maternity"]
    assert (data.registered_on, data.late) == (ENTRY + timedelta(days=20), False)
    assert not await agency.view.review_pending(PERMIT)
    again = await agency.request(requested("R-kr-2"))
    assert rejected(again).reason is R.ALREADY_REGISTERED


async def test_an_approval_without_exemptions_registers_all_five() -> None:
    """The certificate does not hold an exemption: all five, no agreement applied."""
    agency = Agency()
    await referred(agency)
    data = registered(await decide(agency, decided()))
    assert (data.exempt, data.agreement, len(data.insured)) == ((), None, 5)


async def test_a_refusal_rejects_with_the_reviewers_ground_and_frees_the_permit() -> None:
    """refuse → InsuranceRegistrationRejected(review_refused) with the ground; a new request
    for the permit is decided again instead of waiting behind the review forever."""
    agency = Agency()
    await referred(agency)
    data = rejected(await decide(agency, decided(
        decision="refuse", reason="certificate of coverage expired before the request")))
    assert (data.reason, data.request_id, data.permit_no) == (R.REVIEW_REFUSED, "R-kr", PERMIT)
    assert "certificate of coverage expired" in data.message
    assert agency.view.accounts == {}
    assert registered(await agency.request(requested("R-kr-2")))


async def test_the_same_decision_twice_publishes_nothing_more() -> None:
    """A second submission of the decision (new event id): no second outcome."""
    agency = Agency()
    await referred(agency)
    assert registered(await decide(agency, decided(exempt=["pension"])))
    assert await decide(agency, decided(exempt=["pension"])) == []
    assert len(agency.view.registrations) == 1


async def test_another_decision_on_a_decided_review_is_dead_lettered() -> None:
    """Approved, then refused: the first stands; the second is refused loudly."""
    agency = Agency()
    await referred(agency)
    registered(await decide(agency, decided()))
    with pytest.raises(handlers.ReviewNotPending) as refused:
        await decide(agency, decided(decision="refuse"))
    assert refused.value.reason == "review_not_pending"


@pytest.mark.parametrize("setup", ["unknown", "registered", "rejected"])
async def test_a_decision_on_a_request_not_in_review_is_dead_lettered(setup: str) -> None:
    """Unknown request id, or one the rules decided: review_not_pending, nothing stored."""
    agency = Agency()
    agency.authority.issued(person("KR"))
    if setup == "registered":
        registered(await agency.request(requested("R-kr")))
    if setup == "rejected":
        rejected(await agency.request(requested("R-kr", employer_credit_code="91110105MA01ABCD3X")))
    with pytest.raises(handlers.ReviewNotPending):
        await decide(agency, decided())
    assert agency.view.reviews == {}


async def test_a_decision_naming_another_permit_is_dead_lettered() -> None:
    agency = Agency()
    await referred(agency)
    with pytest.raises(handlers.ReviewMismatch):
        await decide(agency, decided(permit_no="156000000000000099"))
    assert await agency.view.review_pending(PERMIT)


async def test_an_approval_after_the_permit_ended_is_rejected_with_the_permits_reason() -> None:
    """Cancelled while under review: the approval cannot register it; permit_cancelled."""
    agency = Agency()
    permit = await referred(agency)
    await agency.on(agency.authority.publish(domain.cancel(
        permit, reason=CancellationReason.REVOKED, today=ENTRY + timedelta(days=25))))
    data = rejected(await decide(agency, decided()))
    assert data.reason is R.PERMIT_CANCELLED
    assert not await agency.view.review_pending(PERMIT)
    assert agency.view.reviews["R-kr"].outcome == "rejected"


@pytest.mark.parametrize("reason", [
    "holder Kim passport M12345678 checked",  # a passport number: 8 digits
    "call back on kim@example.kr",
    "two\nlines",
    "ok",
])
def test_a_reason_with_personal_data_or_no_ground_is_refused_by_the_schema(reason: str) -> None:
    with pytest.raises(ValidationError):
        decided(reason=reason)


def test_a_refusal_exempts_nothing() -> None:
    with pytest.raises(ValidationError):
        decided(decision="refuse", exempt=["pension"])


def test_the_event_is_keyed_by_the_permit() -> None:
    event = decided()
    assert event.subject == PERMIT
    assert uuid.UUID(str(event.id))


async def test_an_approval_of_a_permit_erased_while_under_review_is_rejected() -> None:
    """The view no longer holds the permit (retention): permit_unknown, never a crash."""
    agency = Agency()
    await referred(agency)
    del agency.view.permits[PERMIT]
    assert rejected(await decide(agency, decided())).reason is R.PERMIT_UNKNOWN
