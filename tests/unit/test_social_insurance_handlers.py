"""The social insurance agency's handlers as plain function calls against an in-memory view.

The same behaviours as tests/integration/test_social_insurance_registrations.py, without
Kafka or Postgres: `MemorySocialInsuranceView` keeps the rows and unique indexes of
`SocialInsuranceView` (one registration in force per permit, one decision per request id,
one account per person key).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from consumers.social_insurance import handlers
from consumers.social_insurance.agreements import load_agreements
from consumers.social_insurance.handlers import Policy
from hub.dispatch import Emit
from producers.work_permit import domain
from schemas.card import CardPermitInfo, ECardIssued, ECardIssuedData, QrReference
from schemas.permits import (
    CancellationReason,
    Category,
    Employer,
    Holder,
    NotificationLetterIssued,
    PermitCancelled,
    PermitChanged,
    PermitEvent,
    PermitExpired,
    PermitPayload,
    PermitRecord,
    PermitStandard,
    PermitStatus,
)
from schemas.social_insurance import (
    Insurance,
    InsuranceRegistered,
    InsuranceRegisteredData,
    InsuranceRegistrationReferred,
    InsuranceRegistrationReferredData,
    InsuranceRegistrationRejected,
    InsuranceRegistrationRejectedData,
    InsuranceRegistrationRequested,
    InsuranceRegistrationRequestedData,
    InsuranceRejection,
    InsuranceSuspended,
    InsuranceSuspendedData,
    ReferralReason,
    SocialSecurityNumberIssued,
    SocialSecurityNumberIssuedData,
    SuspensionCause,
)
from tests.factories import holder, permit_event
from tests.memory_views import TEST_KEYS, MemorySocialInsuranceView

R = InsuranceRejection
ENTRY = date(2025, 3, 3)
PERMIT = "156000000000000042"
CARD_ID = "ESSC00000000000000A1"
HANSA = Employer(name="Hansa Automotive Systems (Shanghai) Co., Ltd.",
                 credit_code="91310115MA1K4XYW8B", province="Shanghai", city="Shanghai")
ACME = "91110105MA01ABCD3X"
ALL_FIVE = ["pension", "medical", "work_injury", "unemployment", "maternity"]


def person(nationality: str = "US", passport_no: str = "P00000001") -> Holder:
    """A foreigner of this nationality."""
    return holder(nationality=nationality, passport_no=passport_no,
                  date_of_birth=date(1985, 1, 2), passport_expiry=date(2034, 1, 1))


def policy() -> Policy:
    """The default agreements table, and SSNs numbered in order so tests can name them."""
    numbers = itertools.count(1)
    return Policy(agreements=load_agreements(), keys=TEST_KEYS,
                  new_ssn=lambda: f"F{next(numbers):016d}")


class Authority:
    """The work-permit authority in memory: each decision is its permit's next event."""

    def __init__(self, view: MemorySocialInsuranceView) -> None:
        self.view = view
        self.sequences: dict[str, int] = {}

    def publish(self, data: PermitPayload) -> PermitEvent:
        """Wrap the decision in the permit's next event and project it into the view."""
        no = data.permit.permit_no
        self.sequences[no] = self.sequences.get(no, 0) + 1
        event = permit_event(data, self.sequences[no])
        self.view.project(event)
        return event

    def letter(self, who: Holder, permit_no: str = PERMIT, months: int = 24,
               entry: date = ENTRY, employer: Employer = HANSA,
               letter_no: str | None = None) -> PermitEvent:
        """A notification letter three weeks before entry, numbered NL<permit> by default."""
        return self.publish(domain.notification_letter(
            permit_no=permit_no, letter_no=letter_no or f"NL{permit_no}", holder=who,
            employer=employer,
            category=Category.B, position="Engineer", approved_months=months,
            today=entry - timedelta(days=21)))

    def issued(self, who: Holder, permit_no: str = PERMIT, months: int = 24,
               entry: date = ENTRY, employer: Employer = HANSA) -> PermitRecord:
        """A permit issued on the entry date."""
        letter = self.letter(who, permit_no, months, entry, employer).data.permit
        return self.publish(domain.issue(letter, valid_from=entry, today=entry)).data.permit

    def legacy(self, permit_no: str = PERMIT) -> PermitRecord:
        """A pre-integration permit issued in March 2024."""
        record = PermitRecord(
            permit_no=permit_no, status=PermitStatus.ACTIVE, standard=PermitStandard.LEGACY,
            holder=person("CA"), category=Category.B, employer=HANSA, position="Teacher",
            approved_months=36, issued_on=date(2024, 3, 1), valid_from=date(2024, 3, 1),
            valid_until=date(2027, 2, 28))
        return self.publish(domain.legacy(record)).data.permit


def requested(
    request_id: str = "R-1", reference: dict[str, str] | None = None, **data: Any
) -> InsuranceRegistrationRequested:
    """The employer's request 20 days after entry, naming the permit by `reference`."""
    reference = reference or {"kind": "permit_no", "permit_no": PERMIT}
    fields: dict[str, Any] = {
        "request_id": request_id, "requester": "employer", "reference": reference,
        "employer_credit_code": HANSA.credit_code, "requested_on": ENTRY + timedelta(days=20),
    }
    payload = InsuranceRegistrationRequestedData.model_validate(fields | data)
    subject = next(v for k, v in reference.items() if k != "kind")
    event = InsuranceRegistrationRequested.create(subject=subject, sequence=1, data=payload)
    assert isinstance(event, InsuranceRegistrationRequested)
    return event


def card_issued(record: PermitRecord, card_id: str = CARD_ID) -> ECardIssued:
    """What the card service publishes when it issues an e-card for the permit."""
    now = datetime(2025, 3, 10, tzinfo=UTC)
    info = CardPermitInfo(
        permit_no=record.permit_no, status=record.status, standard=record.standard,
        holder_name=record.holder.name, nationality=record.holder.nationality,
        category=record.category, employer_name=record.employer.name,
        position=record.position, valid_from=record.valid_from, valid_until=record.valid_until)
    event = ECardIssued.create(subject=record.permit_no, sequence=1, data=ECardIssuedData(
        request_id=uuid.uuid4(), card_id=card_id, permit=info,
        qr=QrReference(token="t" * 40, key_id="k", issued_at=now,
                       expires_at=now + timedelta(minutes=10)),
        issued_at=now))
    assert isinstance(event, ECardIssued)
    return event


def types(emits: Sequence[Emit]) -> list[type[Any]]:
    return [e.event_type for e in emits]


def registered(emits: Sequence[Emit], subject: str = PERMIT) -> InsuranceRegisteredData:
    """The registration among the outcomes, checked to be about `subject`."""
    assert emits[0].event_type is InsuranceRegistered, emits
    assert emits[0].subject == subject
    data = emits[0].data
    assert isinstance(data, InsuranceRegisteredData)
    return data


def rejected(emits: Sequence[Emit], subject: str = PERMIT) -> InsuranceRegistrationRejectedData:
    """The single rejection, checked to be keyed by `subject`."""
    assert types(emits) == [InsuranceRegistrationRejected], emits
    assert emits[0].subject == subject
    data = emits[0].data
    assert isinstance(data, InsuranceRegistrationRejectedData)
    return data


class Agency:
    """The agency's handlers on one in-memory view with one policy."""

    def __init__(self) -> None:
        self.view = MemorySocialInsuranceView()
        self.authority = Authority(self.view)
        self.policy = policy()

    async def request(self, event: InsuranceRegistrationRequested) -> Sequence[Emit]:
        return await handlers.on_registration_requested(event, self.view, self.policy)

    async def on(self, event: PermitEvent | ECardIssued) -> Sequence[Emit]:
        """Hand a lifecycle or card event to its handler, as the router would."""
        if isinstance(event, NotificationLetterIssued):
            return await handlers.on_letter_issued(event, self.view)
        if isinstance(event, ECardIssued):
            return await handlers.on_ecard_issued(event, self.view)
        if isinstance(event, PermitCancelled):
            return await handlers.on_permit_cancelled(event, self.view)
        if isinstance(event, PermitExpired):
            return await handlers.on_permit_expired(event, self.view)
        assert isinstance(event, PermitChanged)
        return await handlers.on_permit_changed(event, self.view, self.policy)


# registration and the SSN ---------------------------------------------------------------


async def test_a_first_registration_covers_all_five_and_issues_the_ssn_once() -> None:
    """InsuranceRegistered on all five insurances, then SocialSecurityNumberIssued with it."""
    agency = Agency()
    agency.authority.issued(person("US"))
    emits = await agency.request(requested())
    assert types(emits) == [InsuranceRegistered, SocialSecurityNumberIssued]
    data = registered(emits)
    assert [i.value for i in data.insured] == ALL_FIVE
    assert (data.exempt, data.agreement, data.late) == ((), None, False)
    assert data.deadline == ENTRY + timedelta(days=30)
    ssn_issued = emits[1].data
    assert isinstance(ssn_issued, SocialSecurityNumberIssuedData)
    assert (emits[1].subject, ssn_issued.ssn, ssn_issued.issued_on) == (
        PERMIT, data.ssn, ENTRY + timedelta(days=20))
    assert agency.view.accounts[data.ssn].status == "active"
    assert await agency.view.registration_in_force(PERMIT) == data.ssn
    assert [r.outcome for r in agency.view.requests] == ["registered"]


async def test_a_request_may_name_the_permit_by_its_notification_letter() -> None:
    """After NotificationLetterIssued the letter number finds the permit."""
    agency = Agency()
    letter = agency.authority.letter(person())
    await agency.on(letter)
    permit = agency.authority.publish(domain.issue(letter.data.permit, valid_from=ENTRY,
                                                   today=ENTRY)).data.permit
    emits = await agency.request(requested(
        reference={"kind": "letter_no", "letter_no": f"NL{PERMIT}"}, requester="foreigner"))
    assert registered(emits, permit.permit_no).request_id == "R-1"


async def test_a_request_may_name_the_permit_by_its_ecard() -> None:
    """After ECardIssued the e-card id finds the permit."""
    agency = Agency()
    permit = agency.authority.issued(person())
    await agency.on(card_issued(permit))
    emits = await agency.request(requested(reference={"kind": "ecard", "card_id": CARD_ID}))
    assert registered(emits).permit_no == PERMIT


async def test_a_german_secondee_with_a_certificate_is_exempt_from_pension_and_unemployment(
) -> None:
    """agreements.toml: Germany [C], in force since 2002, exempts pension and unemployment."""
    agency = Agency()
    agency.authority.issued(person("DE"))
    data = registered(await agency.request(requested(certificate_of_coverage=True)))
    assert [i.value for i in data.exempt] == ["pension", "unemployment"]
    assert [i.value for i in data.insured] == ["medical", "work_injury", "maternity"]
    assert data.agreement == "DE"
    stored = next(iter(agency.view.registrations.values()))
    assert stored.cover.exempt == (Insurance.PENSION, Insurance.UNEMPLOYMENT)


async def test_a_german_without_a_certificate_joins_all_five() -> None:
    """No certificate of coverage, no exemption, whatever the agreement says."""
    agency = Agency()
    agency.authority.issued(person("DE"))
    data = registered(await agency.request(requested()))
    assert [i.value for i in data.insured] == ALL_FIVE
    assert data.agreement is None


async def test_an_unconfirmed_agreement_goes_to_manual_review_without_an_ssn() -> None:
    """Korea's covered insurances are [U]: referred; no account; a later request waits."""
    agency = Agency()
    agency.authority.issued(person("KR"))
    emits = await agency.request(requested("R-kr", certificate_of_coverage=True))
    assert types(emits) == [InsuranceRegistrationReferred]
    data = emits[0].data
    assert isinstance(data, InsuranceRegistrationReferredData)
    assert (data.agreement, data.reason) == ("KR", ReferralReason.AGREEMENT_UNCONFIRMED)
    assert agency.view.accounts == {}
    assert rejected(await agency.request(requested("R-kr-again"))).reason is R.REVIEW_PENDING


async def test_a_late_registration_is_accepted_and_flagged() -> None:
    """45 days after the permit's issue: registered, late, with the deadline it missed."""
    agency = Agency()
    agency.authority.issued(person("FR"))
    data = registered(await agency.request(requested(requested_on=ENTRY + timedelta(days=45))))
    assert data.late
    assert data.deadline == ENTRY + timedelta(days=30)
    assert data.agreement is None


def _letter_stage(auth: Authority) -> None:
    auth.letter(person())


def _cancelled(auth: Authority) -> None:
    permit = auth.issued(person())
    auth.publish(domain.cancel(permit, reason=CancellationReason.REVOKED,
                               today=ENTRY + timedelta(days=3)))


def _expired(auth: Authority) -> None:
    permit = auth.issued(person(), months=1, entry=date(2025, 1, 6))
    assert permit.valid_until is not None
    auth.publish(domain.expire(permit, today=permit.valid_until + timedelta(days=1)))


def _issued(auth: Authority) -> None:
    auth.issued(person())


@pytest.mark.parametrize(("setup", "request_data", "reason"), [
    (_letter_stage, {}, R.PERMIT_NOT_ACTIVE),
    (_cancelled, {}, R.PERMIT_CANCELLED),
    (_expired, {}, R.PERMIT_EXPIRED),
    (None, {}, R.PERMIT_UNKNOWN),
    (_issued, {"employer_credit_code": ACME}, R.EMPLOYER_MISMATCH),
], ids=["letter-stage", "cancelled", "expired", "unknown", "other-employer"])
async def test_each_rejection_is_published_with_its_reason_and_stored(
    setup: Any, request_data: dict[str, Any], reason: InsuranceRejection
) -> None:
    """A permit that is not in force, unknown, or another employer's: rejected, no account."""
    agency = Agency()
    if setup is not None:
        setup(agency.authority)
    data = rejected(await agency.request(requested(**request_data)))
    assert (data.reason, data.request_id, data.reference) == (reason, "R-1", PERMIT)
    assert data.message
    assert agency.view.accounts == {}
    assert agency.view.registrations == {}
    assert [(r.outcome, r.reason) for r in agency.view.requests] == [("rejected", reason.value)]


@pytest.mark.parametrize(("reference", "reason"), [
    ({"kind": "letter_no", "letter_no": "NL-NOPE"}, R.LETTER_UNKNOWN),
    ({"kind": "ecard", "card_id": "ESSC00000000000000FF"}, R.ECARD_UNKNOWN),
], ids=["letter", "ecard"])
async def test_an_unknown_letter_or_ecard_is_rejected_under_the_reference_given(
    reference: dict[str, str], reason: InsuranceRejection
) -> None:
    """No permit matched: the rejection is keyed by the reference and names no permit."""
    agency = Agency()
    agency.authority.issued(person())
    given = next(v for k, v in reference.items() if k != "kind")
    data = rejected(await agency.request(requested(reference=reference)), subject=given)
    assert (data.reason, data.permit_no, data.reference) == (reason, None, given)


async def test_a_legacy_permit_registers_by_number_but_not_by_an_ecard_until_migrated() -> None:
    """Honoured as it is by number (late, from its 2024 issue); no e-card features until
    PermitMigrated."""
    agency = Agency()
    legacy = agency.authority.legacy()
    await agency.on(card_issued(legacy, "ESSC00000000000000B1"))
    by_card = await agency.request(requested(
        "L-card", reference={"kind": "ecard", "card_id": "ESSC00000000000000B1"}))
    assert rejected(by_card, "ESSC00000000000000B1").reason is R.ECARD_UNKNOWN
    data = registered(await agency.request(requested("L-number")))
    assert data.late
    assert data.deadline == date(2024, 3, 31)


async def test_a_migrated_legacy_permit_registers_by_its_ecard() -> None:
    """After PermitMigrated the e-card names an integrated permit: registered."""
    agency = Agency()
    migrated = agency.authority.publish(domain.migrate(agency.authority.legacy())).data.permit
    await agency.on(card_issued(migrated, "ESSC00000000000000B2"))
    emits = await agency.request(requested(
        reference={"kind": "ecard", "card_id": "ESSC00000000000000B2"}))
    assert registered(emits).permit_no == PERMIT


async def test_a_registered_permit_is_not_registered_twice() -> None:
    """A second request (new request id) for a permit in force: already_registered."""
    agency = Agency()
    agency.authority.issued(person())
    registered(await agency.request(requested("R-1")))
    again = await agency.request(requested("R-2", requester="foreigner"))
    assert rejected(again).reason is R.ALREADY_REGISTERED
    assert len(agency.view.registrations) == 1


# one decision per request id ------------------------------------------------------------


async def test_a_resubmitted_request_id_is_a_duplicate_and_the_first_decision_stands() -> None:
    """The same request id in a new envelope: duplicate_request, no second registration or SSN."""
    agency = Agency()
    agency.authority.issued(person("DE"))
    first = registered(await agency.request(requested("R-de", certificate_of_coverage=True)))
    again = await agency.request(requested("R-de"))
    assert rejected(again).reason is R.DUPLICATE_REQUEST
    assert await agency.view.decided("R-de") == "registered"
    assert [r.cover.agreement for r in agency.view.registrations.values()] == [first.agreement]
    assert list(agency.view.accounts) == [first.ssn]
    assert [(r.outcome, r.reason) for r in agency.view.requests] == [
        ("registered", None), ("rejected", "duplicate_request")]


async def test_a_rejected_request_id_stays_rejected_when_resubmitted() -> None:
    """A rejection is a decision too: the same id, now with the permit known, is a duplicate."""
    agency = Agency()
    assert rejected(await agency.request(requested())).reason is R.PERMIT_UNKNOWN
    agency.authority.issued(person())
    assert rejected(await agency.request(requested())).reason is R.DUPLICATE_REQUEST
    assert agency.view.registrations == {}


async def test_a_request_whose_subject_is_not_its_reference_is_refused_loudly() -> None:
    """A front-door bug: RequestMismatch (dead-lettered), and nothing is stored."""
    agency = Agency()
    agency.authority.issued(person())
    event = requested().model_copy(update={"subject": "156000000000999999"})
    with pytest.raises(handlers.RequestMismatch):
        await agency.request(event)
    assert agency.view.requests == []


# the permit's end, and the same person again ----------------------------------------------


async def test_a_cancelled_permit_suspends_the_registration_and_keeps_the_account() -> None:
    """PermitCancelled → InsuranceSuspended from the cancellation day, with its reason."""
    agency = Agency()
    permit = agency.authority.issued(person())
    ssn = registered(await agency.request(requested())).ssn
    cancel = agency.authority.publish(domain.cancel(
        permit, reason=CancellationReason.NEW_EMPLOYER, today=date(2025, 9, 30)))
    emits = await agency.on(cancel)
    assert types(emits) == [InsuranceSuspended]
    data = emits[0].data
    assert isinstance(data, InsuranceSuspendedData)
    assert (data.ssn, data.suspended_on, data.cause, data.cancellation_reason) == (
        ssn, date(2025, 9, 30), SuspensionCause.PERMIT_CANCELLED, CancellationReason.NEW_EMPLOYER)
    assert agency.view.accounts[ssn].status == "suspended"
    assert await agency.view.registration_in_force(PERMIT) is None
    assert await agency.on(cancel) == [], "nothing left in force to suspend"


async def test_an_expired_permit_suspends_from_the_day_after_its_end() -> None:
    """PermitExpired → InsuranceSuspended on valid_until + 1, with no cancellation reason."""
    agency = Agency()
    permit = agency.authority.issued(person(), months=1, entry=date(2025, 1, 6))
    registered(await agency.request(requested(requested_on=date(2025, 1, 10))))
    assert permit.valid_until is not None
    expiry = agency.authority.publish(domain.expire(
        permit, today=permit.valid_until + timedelta(days=1)))
    data = (await agency.on(expiry))[0].data
    assert isinstance(data, InsuranceSuspendedData)
    assert (data.suspended_on, data.cause, data.cancellation_reason) == (
        permit.valid_until + timedelta(days=1), SuspensionCause.PERMIT_EXPIRED, None)


async def test_a_permit_never_registered_suspends_nothing() -> None:
    """No registration in force: the cancellation publishes nothing."""
    agency = Agency()
    permit = agency.authority.issued(person())
    cancel = agency.authority.publish(domain.cancel(
        permit, reason=CancellationReason.REVOKED, today=date(2025, 9, 30)))
    assert await agency.on(cancel) == []


async def test_the_same_person_keeps_one_ssn_across_permits_and_passports() -> None:
    """A passport renewal on the first permit, then a new permit on the new passport: the
    same SSN, registered again without a second SocialSecurityNumberIssued."""
    agency = Agency()
    auth = agency.authority
    first = auth.issued(person("GB", "P00000021"))
    ssn = registered(await agency.request(requested("R-first"))).ssn
    changed = auth.publish(domain.change(first, passport_no="N99999999",
                                         passport_expiry=date(2036, 1, 1)))
    assert await agency.on(changed) == []
    await agency.on(auth.publish(domain.cancel(
        changed.data.permit, reason=CancellationReason.NEW_EMPLOYER, today=date(2025, 9, 30))))
    second_no = "156000000000000077"
    auth.issued(person("GB", "N99999999"), permit_no=second_no, entry=date(2025, 10, 20))
    emits = await agency.request(requested(
        "R-second", reference={"kind": "permit_no", "permit_no": second_no},
        requested_on=date(2025, 10, 25)))
    assert types(emits) == [InsuranceRegistered], "never a second SSN event per person"
    assert registered(emits, second_no).ssn == ssn
    account = agency.view.accounts[ssn]
    assert (account.status, account.current_permit_no) == ("active", second_no)
    assert len(agency.view.accounts) == 1


async def test_another_person_gets_another_ssn() -> None:
    """Different passport and permit: a new account and its own SocialSecurityNumberIssued."""
    agency = Agency()
    agency.authority.issued(person("US", "P00000001"))
    agency.authority.issued(person("NG", "P00000002"), permit_no="156000000000000043")
    a = registered(await agency.request(requested("R-a")))
    emits = await agency.request(requested(
        "R-b", reference={"kind": "permit_no", "permit_no": "156000000000000043"}))
    assert types(emits) == [InsuranceRegistered, SocialSecurityNumberIssued]
    assert registered(emits, "156000000000000043").ssn != a.ssn


async def test_a_change_that_keeps_the_passport_adds_no_key() -> None:
    """Only a new passport number is a new key of the person."""
    agency = Agency()
    permit = agency.authority.issued(person())
    registered(await agency.request(requested()))
    keys = dict(agency.view.person_keys)
    changed = agency.authority.publish(domain.change(permit, position="Lead engineer"))
    assert await agency.on(changed) == []
    assert agency.view.person_keys == keys
