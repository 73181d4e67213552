"""The in-memory views refuse what their Postgres tables' keys and unique indexes refuse.

The handler tests are only as honest as these fakes: each rule here is one of the DDL's
constraints in `consumers/<agency>/views.py`.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from consumers.social_insurance.ports import AmbiguousPerson
from consumers.social_insurance.rules import FIVE_INSURANCES, Cover
from schemas.public_security import PresentedPermitNo, ResidencePermitAppliedData
from schemas.social_insurance import InsuranceRegistrationRequestedData
from tests.memory_views import (
    ConstraintViolation,
    MemoryPublicSecurityView,
    MemorySocialInsuranceView,
)

PERMIT = "156000000000000042"
DAY = date(2025, 3, 13)
COVER = Cover(FIVE_INSURANCES, (), None)


def application(application_id: str = "A-1") -> ResidencePermitAppliedData:
    return ResidencePermitAppliedData(
        application_id=application_id, presented=PresentedPermitNo(permit_no=PERMIT),
        entry_date=DAY, applied_on=DAY, requested_until=date(2026, 3, 12))


def request(request_id: str = "R-1") -> InsuranceRegistrationRequestedData:
    return InsuranceRegistrationRequestedData.model_validate({
        "request_id": request_id, "requester": "employer",
        "reference": {"kind": "permit_no", "permit_no": PERMIT},
        "employer_credit_code": "91310115MA1K4XYW8B", "requested_on": DAY})


async def test_one_residence_permit_per_work_permit() -> None:
    """ps_residence_permits.permit_no is UNIQUE."""
    view = MemoryPublicSecurityView()
    await view.issue(PERMIT, "A-1", DAY, date(2026, 3, 12))
    with pytest.raises(ConstraintViolation):
        await view.issue(PERMIT, "A-2", DAY, date(2026, 3, 12))


async def test_one_decision_per_application_id_and_one_row_per_event() -> None:
    """ps_applications: event_id is the key; application_id is unique except duplicates."""
    view = MemoryPublicSecurityView()
    first = uuid.uuid4()
    await view.record(first, PERMIT, application(), outcome="issued")
    with pytest.raises(ConstraintViolation):
        await view.record(uuid.uuid4(), PERMIT, application(), outcome="rejected",
                          reason="already_issued")
    await view.record(uuid.uuid4(), PERMIT, application(), outcome="rejected",
                      reason="duplicate_application")
    with pytest.raises(ConstraintViolation):
        await view.record(first, PERMIT, application("A-2"), outcome="issued")
    assert await view.decided("A-1") == "issued"


async def test_one_registration_in_force_per_permit() -> None:
    """si_registrations_in_force: a second active registration waits for a suspension."""
    view = MemorySocialInsuranceView()
    ssn, created = await view.account_for(["permit:x"], PERMIT, DAY, lambda: "F0000000000000001")
    assert created
    await view.register(request("R-1"), PERMIT, ssn, COVER, deadline=DAY, late=False)
    with pytest.raises(ConstraintViolation):
        await view.register(request("R-2"), PERMIT, ssn, COVER, deadline=DAY, late=False)
    assert await view.suspend(PERMIT, DAY, "permit_cancelled") == ssn
    await view.register(request("R-2"), PERMIT, ssn, COVER, deadline=DAY, late=False)
    assert await view.registration_in_force(PERMIT) == ssn


async def test_keys_naming_two_accounts_are_ambiguous() -> None:
    """account_for never guesses between two people's accounts."""
    view = MemorySocialInsuranceView()
    ssns = iter(["F0000000000000001", "F0000000000000002"])
    await view.account_for(["passport:a"], PERMIT, DAY, lambda: next(ssns))
    await view.account_for(["passport:b"], PERMIT, DAY, lambda: next(ssns))
    with pytest.raises(AmbiguousPerson):
        await view.account_for(["passport:a", "passport:b"], PERMIT, DAY, lambda: next(ssns))


async def test_a_drawn_ssn_that_exists_is_drawn_again_and_the_first_letter_record_stands() -> None:
    """si_accounts.ssn is the key; si_letters and si_ecards keep their first row."""
    view = MemorySocialInsuranceView()
    ssns = iter(["F0000000000000001", "F0000000000000001", "F0000000000000002"])
    first, _ = await view.account_for(["permit:a"], PERMIT, DAY, lambda: next(ssns))
    second, created = await view.account_for(["permit:b"], PERMIT, DAY, lambda: next(ssns))
    assert (first, second, created) == ("F0000000000000001", "F0000000000000002", True)
    await view.remember_letter("NL1", PERMIT)
    await view.remember_letter("NL1", "156000000000000043")
    assert await view.permit_of_letter("NL1") == PERMIT
