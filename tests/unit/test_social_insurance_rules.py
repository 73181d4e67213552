"""Social insurance's registration rules, agreements table and SSNs (docs/domain.md §2)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumers.social_insurance import identity, rules
from consumers.social_insurance.agreements import DEFAULT_FILE, load_agreements
from consumers.social_insurance.rules import FIVE_INSURANCES, Cover, PermitFacts, Refer, Register
from schemas.social_insurance import (
    ByECard,
    Insurance,
    InsuranceRegistrationRequestedData,
    InsuranceRejection,
    ReferralReason,
)

AGREEMENTS = load_agreements()
EMPLOYER = "91310115MA1K4XYW8B"
PERMIT_NO = "156000000000000042"


def permit(**overrides: object) -> PermitFacts:
    """An active permit of a German national issued on 1 March 2025."""
    fields: dict[str, object] = {
        "permit_no": PERMIT_NO, "status": "active", "standard": "integrated",
        "nationality": "DE", "employer_credit_code": EMPLOYER,
        "issued_on": date(2025, 3, 1), "valid_from": date(2025, 3, 1),
    }
    return PermitFacts(**(fields | overrides))  # type: ignore[arg-type]


def request(**overrides: object) -> InsuranceRegistrationRequestedData:
    """The employer registers 20 days after the permit's issue, without a certificate."""
    fields: dict[str, object] = {
        "request_id": "R-1", "requester": "employer",
        "reference": {"kind": "permit_no", "permit_no": PERMIT_NO},
        "employer_credit_code": EMPLOYER, "requested_on": date(2025, 3, 21),
    }
    return InsuranceRegistrationRequestedData.model_validate(fields | overrides)


def test_the_five_insurances() -> None:
    """Pension, medical, work injury, unemployment and maternity, in that order."""
    assert [i.value for i in FIVE_INSURANCES] == [
        "pension", "medical", "work_injury", "unemployment", "maternity"]


def test_a_timely_registration_covers_all_five() -> None:
    """Without a certificate of coverage a German national joins all five insurances."""
    decision = rules.decide(request(), permit(), AGREEMENTS)
    assert decision == Register(Cover(FIVE_INSURANCES, (), None), date(2025, 3, 31), late=False)


def test_the_thirty_day_deadline_counts_from_the_permits_issue() -> None:
    """Day 30 after issue is in time; day 31 is accepted and flagged late."""
    on_time = rules.decide(request(requested_on=date(2025, 3, 31)), permit(), AGREEMENTS)
    late = rules.decide(request(requested_on=date(2025, 4, 1)), permit(), AGREEMENTS)
    assert isinstance(on_time, Register)
    assert not on_time.late
    assert isinstance(late, Register)
    assert late.late
    assert late.deadline == date(2025, 3, 31)


def test_a_german_secondee_with_a_certificate_is_exempt_from_pension_and_unemployment() -> None:
    """DE (in force 2002-04-04, [C]): pension and unemployment exempt; three contributed."""
    decision = rules.decide(request(certificate_of_coverage=True), permit(), AGREEMENTS)
    assert isinstance(decision, Register)
    assert decision.cover == Cover(
        (Insurance.MEDICAL, Insurance.WORK_INJURY, Insurance.MATERNITY),
        (Insurance.PENSION, Insurance.UNEMPLOYMENT), "DE")


@pytest.mark.parametrize(
    ("country", "exempt"),
    [("ES", {"pension", "unemployment"}), ("CA", {"pension"}), ("JP", {"pension"}),
     ("LU", {"pension"})],
)
def test_each_confirmed_agreement_exempts_what_the_table_says(
    country: str, exempt: set[str]
) -> None:
    """The confirmed rows of docs/domain.md §2 give their exemptions, nothing more."""
    decision = rules.coverage(country, True, date(2025, 3, 21), AGREEMENTS)
    assert isinstance(decision, Cover)
    assert {i.value for i in decision.exempt} == exempt
    assert set(decision.insured) | set(decision.exempt) == set(FIVE_INSURANCES)


def test_an_agreement_not_yet_in_force_exempts_nothing() -> None:
    """JP came into force on 2019-09-01: a request of August 2019 contributes to all five."""
    decision = rules.coverage("JP", True, date(2019, 8, 31), AGREEMENTS)
    assert decision == Cover(FIVE_INSURANCES, (), None)


@pytest.mark.parametrize("country", ["KR", "DK", "FI", "CH", "NL", "FR", "RS"])
def test_an_unconfirmed_country_goes_to_manual_review(country: str) -> None:
    """A certificate from a country whose covered insurances are [U] is never guessed."""
    decision = rules.decide(request(certificate_of_coverage=True),
                            permit(nationality=country), AGREEMENTS)
    assert isinstance(decision, Refer)
    assert decision.agreement == country
    assert decision.reason is ReferralReason.AGREEMENT_UNCONFIRMED


def test_a_confirmed_exemption_with_an_unknown_start_goes_to_review() -> None:
    """KG's pension exemption is [C] but its date in force is not given: review, not a guess."""
    decision = rules.coverage("KG", True, date(2025, 3, 21), AGREEMENTS)
    assert isinstance(decision, Refer)
    assert decision.reason is ReferralReason.AGREEMENT_IN_FORCE_UNKNOWN


def test_without_a_certificate_an_unconfirmed_country_joins_all_five() -> None:
    """No certificate, no exemption question: a Korean without one is simply registered."""
    decision = rules.decide(request(), permit(nationality="KR"), AGREEMENTS)
    assert isinstance(decision, Register)
    assert decision.cover == Cover(FIVE_INSURANCES, (), None)


def test_a_country_without_an_agreement_ignores_the_certificate() -> None:
    """A certificate from a country without an agreement exempts nothing."""
    decision = rules.coverage("US", True, date(2025, 3, 21), AGREEMENTS)
    assert decision == Cover(FIVE_INSURANCES, (), None)


@pytest.mark.parametrize(
    ("status", "expected"),
    [("letter_issued", InsuranceRejection.PERMIT_NOT_ACTIVE),
     ("cancelled", InsuranceRejection.PERMIT_CANCELLED),
     ("expired", InsuranceRejection.PERMIT_EXPIRED)],
)
def test_a_permit_not_in_force_is_refused(status: str, expected: InsuranceRejection) -> None:
    """Letter-stage, cancelled and expired permits each give their own reason."""
    decision = rules.decide(request(), permit(status=status), AGREEMENTS)
    assert isinstance(decision, rules.Refuse)
    assert decision.reason is expected


def test_another_employer_is_refused() -> None:
    """The employer named must be the permit's employer."""
    decision = rules.decide(request(employer_credit_code="91110105MA01ABCD3X"), permit(),
                            AGREEMENTS)
    assert isinstance(decision, rules.Refuse)
    assert decision.reason is InsuranceRejection.EMPLOYER_MISMATCH


def test_a_registered_or_reviewed_permit_is_not_registered_again() -> None:
    """A second registration of a permit is refused; so is one while a review is pending."""
    again = rules.decide(request(), permit(), AGREEMENTS, registered=True)
    waiting = rules.decide(request(), permit(), AGREEMENTS, in_review=True)
    assert isinstance(again, rules.Refuse)
    assert again.reason is InsuranceRejection.ALREADY_REGISTERED
    assert isinstance(waiting, rules.Refuse)
    assert waiting.reason is InsuranceRejection.REVIEW_PENDING


def test_another_employer_learns_nothing_about_the_registration() -> None:
    """An employer that is not the permit's is refused as such, not told it is registered."""
    decision = rules.decide(request(employer_credit_code="91110105MA01ABCD3X"), permit(),
                            AGREEMENTS, registered=True)
    assert isinstance(decision, rules.Refuse)
    assert decision.reason is InsuranceRejection.EMPLOYER_MISMATCH


def test_a_legacy_permit_is_honoured_as_it_is() -> None:
    """A pre-integration permit registers like any other, its deadline from its own issue."""
    legacy = permit(standard="legacy", issued_on=date(2024, 3, 1), valid_from=date(2024, 3, 1))
    decision = rules.decide(request(), legacy, AGREEMENTS)
    assert isinstance(decision, Register)
    assert decision.deadline == date(2024, 3, 31)
    assert decision.late


# The agreements file --------------------------------------------------------------------


def test_the_shipped_table_has_the_thirteen_agreements_with_sources() -> None:
    """13 countries (docs/domain.md §2), each with a source and confidence marks."""
    assert len(AGREEMENTS) == 13
    assert all(a.sources for a in AGREEMENTS.values())
    confirmed = {c for c, a in AGREEMENTS.items() if a.confirmed}
    assert confirmed == {"DE", "ES", "CA", "JP", "LU", "KG"}


def test_a_confirmed_row_without_exemptions_is_refused(tmp_path: Path) -> None:
    """A typo in the data file stops the service at start instead of exempting wrongly."""
    text = DEFAULT_FILE.read_text().replace(
        'exempt = ["pension", "unemployment"]\nexempt_confidence = "C"\nin_force = 2002-04-04',
        'exempt = []\nexempt_confidence = "C"\nin_force = 2002-04-04', 1)
    path = tmp_path / "agreements.toml"
    path.write_text(text)
    with pytest.raises(ValidationError, match="names its exempt insurances"):
        load_agreements(path)


def test_an_unknown_insurance_in_the_table_is_refused(tmp_path: Path) -> None:
    """Only the five insurances may be named as exempt."""
    path = tmp_path / "agreements.toml"
    path.write_text(DEFAULT_FILE.read_text().replace('"unemployment"]', '"housing_fund"]', 1))
    with pytest.raises(ValidationError, match="exempt"):
        load_agreements(path)


# Identity -------------------------------------------------------------------------------


def test_ssns_are_opaque_and_distinct() -> None:
    """Generated SSNs reveal nothing of the person and do not repeat."""
    ssns = {identity.new_ssn() for _ in range(1000)}
    assert len(ssns) == 1000
    assert all(len(s) == 17 and s.startswith("F") for s in ssns)


def test_an_ecard_reference_must_be_a_card_id() -> None:
    """A request naming an e-card with a malformed id is a schema violation."""
    with pytest.raises(ValidationError):
        ByECard(card_id="not-a-card")
