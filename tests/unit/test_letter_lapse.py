"""A lapsed notification letter (NotificationLetterLapsed) in the views of the agencies that
read the permit lifecycle: each refuses what needs a permit in force, and says why."""

from __future__ import annotations

from datetime import date

from consumers.public_security import rules as ps_rules
from consumers.social_insurance import rules as si_rules
from producers.work_permit import domain
from schemas.permits import Category, NotificationLetterLapsed
from schemas.public_security import ResidenceRejection
from schemas.social_insurance import InsuranceRejection
from tests.factories import employer, holder

NO = "156000000000000001"


def lapsed_event() -> NotificationLetterLapsed:
    letter = domain.notification_letter(
        permit_no=NO, letter_no="NL1", holder=holder(), employer=employer(),
        category=Category.B, position="Engineer", approved_months=12, today=date(2025, 3, 3))
    event = NotificationLetterLapsed.create(
        subject=NO, sequence=2, data=domain.lapse(letter.permit, today=date(2025, 9, 3)))
    assert isinstance(event, NotificationLetterLapsed)
    return event


def test_social_insurance_refuses_to_register_a_permit_whose_letter_lapsed() -> None:
    """Before, a lapsed status matched no refusal and the registration went through."""
    status = lapsed_event().data.permit.status.value
    facts = si_rules.PermitFacts(NO, status, "integrated", "DE", employer().credit_code,
                                 None, None)
    refused = si_rules.check_permit(facts)
    assert refused is not None
    assert refused.reason is InsuranceRejection.PERMIT_NOT_ACTIVE
    assert "lapsed" in refused.message


def test_public_security_refuses_a_residence_permit_on_a_lapsed_letter_and_says_so() -> None:
    """Not 'expired': the permit never started; a new application keeps the number."""
    status = lapsed_event().data.permit.status.value
    facts = ps_rules.PermitFacts(NO, status, "integrated", None, None)
    refused = ps_rules.check_permit(facts, NO, by_token=False)
    assert refused is not None
    assert refused.reason is ResidenceRejection.PERMIT_NOT_ACTIVE
    assert "lapsed" in refused.message
