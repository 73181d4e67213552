"""A person across permits, at social insurance (issue 11, item 4).

- After a change of employer (the old permit cancelled, a new one issued) the person keeps
  the SSN, and the registration of the new permit carries it (`InsuranceRegistered.ssn`)
  so that the card service can link it to the new e-card; no second
  `SocialSecurityNumberIssued`.
- A request that names the person by something of the ended permit (its e-card, letter or
  number) finds the person's current permit with the requesting employer, never the
  cancelled one; another employer learns nothing of the new permit.
- The permit number is the person's for life: a permit that becomes active again under the
  same number (a new letter and issue, the sequence continuing) is registered again for the
  new period; the old registration stays as history.
- A permit is never registered past its last day, even before the authority's calendar has
  expired it.
"""

from __future__ import annotations

from datetime import date, timedelta

from producers.work_permit import domain
from schemas.permits import CancellationReason, Employer, PermitRecord
from schemas.social_insurance import (
    InsuranceRegistered,
    InsuranceRegistrationRequested,
    InsuranceRejection,
    SocialSecurityNumberIssued,
)
from tests.unit.test_social_insurance_handlers import (
    ACME,
    CARD_ID,
    ENTRY,
    PERMIT,
    Agency,
    card_issued,
    person,
    registered,
    rejected,
    requested,
    types,
)

R = InsuranceRejection
NEW_PERMIT = "156000000000000077"
NEW_CARD = "ESSC00000000000000C7"
ACME_CO = Employer(name="Acme Robotics (Beijing) Co., Ltd.", credit_code=ACME,
                   province="Beijing", city="Beijing")
MOVED_ON = date(2025, 9, 30)
NEW_ENTRY = date(2025, 10, 20)


async def _changed_employer(agency: Agency) -> str:
    """Registered at Hansa with an e-card; the permit cancelled for a new employer; a new
    permit (another number) issued for Acme. Returns the SSN."""
    auth = agency.authority
    letter = auth.letter(person("GB", "P00000021"))
    await agency.on(letter)
    first = auth.publish(domain.issue(letter.data.permit, valid_from=ENTRY,
                                      today=ENTRY)).data.permit
    await agency.on(card_issued(first))
    ssn = registered(await agency.request(requested("R-first"))).ssn
    await agency.on(auth.publish(domain.cancel(
        first, reason=CancellationReason.NEW_EMPLOYER, today=MOVED_ON)))
    second = auth.issued(person("GB", "P00000021"), permit_no=NEW_PERMIT, entry=NEW_ENTRY,
                         employer=ACME_CO)
    await agency.on(card_issued(second, NEW_CARD))
    return ssn


def _acme(request_id: str, reference: dict[str, str]) -> InsuranceRegistrationRequested:
    return requested(request_id, reference=reference, employer_credit_code=ACME,
                     requested_on=NEW_ENTRY + timedelta(days=5))


async def test_after_a_change_of_employer_the_new_registration_carries_the_same_ssn() -> None:
    """The new e-card's request: InsuranceRegistered on the new permit with the person's
    SSN (what the card service links), no second SSN event, the account follows."""
    agency = Agency()
    ssn = await _changed_employer(agency)
    emits = await agency.request(requested(
        "R-acme", reference={"kind": "ecard", "card_id": NEW_CARD},
        employer_credit_code=ACME, requested_on=NEW_ENTRY + timedelta(days=5)))
    assert types(emits) == [InsuranceRegistered]
    data = registered(emits, NEW_PERMIT)
    assert (data.ssn, data.employer_credit_code) == (ssn, ACME)
    account = agency.view.accounts[ssn]
    assert (account.status, account.current_permit_no) == ("active", NEW_PERMIT)


async def test_the_old_ecard_names_the_person_and_finds_the_current_permit() -> None:
    """The e-card of the cancelled permit, given by the new employer: registered on the new
    permit, never refused as cancelled."""
    agency = Agency()
    ssn = await _changed_employer(agency)
    emits = await agency.request(requested(
        "R-old-card", reference={"kind": "ecard", "card_id": CARD_ID},
        employer_credit_code=ACME, requested_on=NEW_ENTRY + timedelta(days=5)))
    data = registered(emits, NEW_PERMIT)
    assert data.ssn == ssn
    assert agency.view.accounts[ssn].current_permit_no == NEW_PERMIT
    assert agency.view.requests[-1].permit_no == NEW_PERMIT


async def test_the_old_permit_number_and_letter_find_the_current_permit_too() -> None:
    """By the old number, and by the old letter: the new employer's current permit."""
    agency = Agency()
    await _changed_employer(agency)
    by_letter = await agency.request(_acme("R-old-letter", {"kind": "letter_no",
                                                            "letter_no": f"NL{PERMIT}"}))
    assert registered(by_letter, NEW_PERMIT).request_id == "R-old-letter"
    agency = Agency()
    await _changed_employer(agency)
    by_number = await agency.request(_acme("R-old-no", {"kind": "permit_no",
                                                        "permit_no": PERMIT}))
    assert registered(by_number, NEW_PERMIT).request_id == "R-old-no"


async def test_the_old_employer_is_refused_and_learns_nothing_of_the_new_permit() -> None:
    """Hansa names the cancelled permit's e-card: permit_cancelled on the old permit."""
    agency = Agency()
    await _changed_employer(agency)
    data = rejected(await agency.request(requested(
        "R-hansa", reference={"kind": "ecard", "card_id": CARD_ID},
        requested_on=NEW_ENTRY + timedelta(days=5))), subject=PERMIT)
    assert (data.reason, data.permit_no) == (R.PERMIT_CANCELLED, PERMIT)
    assert NEW_PERMIT not in data.message


async def _active_again(agency: Agency, ended: PermitRecord) -> PermitRecord:
    """A new application by the former holder: a letter and an issue under the same number,
    the sequence continuing."""
    return agency.authority.issued(person(), permit_no=ended.permit_no, entry=NEW_ENTRY)


async def test_a_permit_active_again_under_its_number_is_registered_for_the_new_period(
) -> None:
    """Cancelled, then issued again under the same number: a new registration with the same
    SSN and no second SSN event; the first registration stays, suspended, as history."""
    agency = Agency()
    first = agency.authority.issued(person())
    ssn = registered(await agency.request(requested("R-1"))).ssn
    await agency.on(agency.authority.publish(domain.cancel(
        first, reason=CancellationReason.CONTRACT_ENDED, today=MOVED_ON)))
    again = await _active_again(agency, first)
    assert agency.view.permits[PERMIT].sequence == 5
    emits = await agency.request(requested("R-2", requested_on=NEW_ENTRY + timedelta(days=3)))
    assert types(emits) == [InsuranceRegistered]
    data = registered(emits)
    assert (data.ssn, data.deadline, data.late) == (
        ssn, again.valid_from and again.valid_from + timedelta(days=30), False)
    history = sorted((r.request_id, r.status) for r in agency.view.registrations.values())
    assert history == [("R-1", "suspended"), ("R-2", "active")]
    assert agency.view.accounts[ssn].status == "active"
    assert SocialSecurityNumberIssued not in types(emits)


async def test_an_expired_permit_active_again_is_registered_again() -> None:
    """Expired, then a new application under the same number: registered for the new period."""
    agency = Agency()
    first = agency.authority.issued(person(), months=1, entry=date(2025, 1, 6))
    ssn = registered(await agency.request(requested("R-1", requested_on=date(2025, 1, 10)))).ssn
    assert first.valid_until is not None
    await agency.on(agency.authority.publish(domain.expire(
        first, today=first.valid_until + timedelta(days=1))))
    await _active_again(agency, first)
    data = registered(await agency.request(requested(
        "R-2", requested_on=NEW_ENTRY + timedelta(days=3))))
    assert data.ssn == ssn


async def test_a_permit_is_not_registered_past_its_last_day() -> None:
    """Still active in the view (the calendar has not expired it yet), but the request is
    dated after valid_until: permit_expired, naming the end."""
    agency = Agency()
    permit = agency.authority.issued(person(), months=1, entry=date(2025, 1, 6))
    assert permit.valid_until is not None
    after = permit.valid_until + timedelta(days=1)
    data = rejected(await agency.request(requested(requested_on=after)))
    assert data.reason is R.PERMIT_EXPIRED
    assert permit.valid_until.isoformat() in data.message
    assert agency.view.accounts == {}
    on_last_day = await agency.request(requested("R-last", requested_on=permit.valid_until))
    assert registered(on_last_day).registered_on == permit.valid_until


async def test_the_request_date_before_the_end_is_not_affected() -> None:
    """A request within the validity is registered as before."""
    agency = Agency()
    agency.authority.issued(person())
    assert registered(await agency.request(requested(requested_on=ENTRY + timedelta(days=2))))
