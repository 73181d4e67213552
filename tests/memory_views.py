"""In-memory implementations of the agencies' view ports, for fast handler tests.

Each keeps the rows its Postgres view keeps (`consumers/<agency>/views.py`) and enforces the
same keys and unique indexes: a write the database would refuse raises `ConstraintViolation`
here, and a write it would skip (`ON CONFLICT DO NOTHING`) is skipped here too. The
integration tests run the same decisions on Postgres.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from consumers.card.handlers import card_permit
from consumers.card.records import CardPermit, ECard, Notice, PhysicalCard
from consumers.public_security.handlers import checked_permit
from consumers.public_security.records import CheckedPermit
from consumers.public_security.rules import (
    ApplicationFacts,
    CancellationCase,
    ResidenceFacts,
    names,
)
from consumers.public_security.rules import PermitFacts as ResidencePermitFacts
from consumers.social_insurance.handlers import insured_permit
from consumers.social_insurance.identity import PersonKeys
from consumers.social_insurance.ports import AmbiguousPerson
from consumers.social_insurance.records import InsuredPermit, Referral, Review
from consumers.social_insurance.rules import Cover
from consumers.social_insurance.rules import PermitFacts as InsurancePermitFacts
from schemas.permit_token import Claims
from schemas.permits import PermitEvent
from schemas.public_security import ResidencePermitAppliedData
from schemas.social_insurance import (
    InsuranceRegistrationRequestedData,
    InsuranceReviewDecidedData,
)

if TYPE_CHECKING:
    from consumers.card.ports import CardViewPort
    from consumers.public_security.ports import PublicSecurityViewPort
    from consumers.social_insurance.ports import SocialInsuranceViewPort


class ConstraintViolation(Exception):
    """A write the Postgres view's keys or checks would refuse (an integrity error there)."""


# card service ---------------------------------------------------------------------------


class MemoryCardView:
    """The card view's port, in memory, with the database's uniqueness rules."""

    def __init__(self) -> None:
        self.permits: dict[str, CardPermit] = {}
        self.ecards: dict[str, ECard] = {}
        self.requests: dict[uuid.UUID, tuple[uuid.UUID, str, str | None, str | None]] = {}
        self.tokens: list[tuple[str, Claims, str]] = []
        self.physical: dict[str, PhysicalCard] = {}
        self.notices: dict[tuple[str, str], Notice] = {}

    def project(self, event: PermitEvent) -> None:
        """Apply a permit event as the router's projection would."""
        row = card_permit(event)
        held = self.permits.get(row.permit_no)
        if held is None or held.sequence < row.sequence:  # the upsert's sequence guard
            self.permits[row.permit_no] = row

    async def permit(self, permit_no: str) -> CardPermit | None:
        """The permit as the card service holds it."""
        return self.permits.get(permit_no)

    async def permit_no_of_ssn(self, ssn: str) -> str | None:
        """The permit whose physical card carries this SSN."""
        return next((c.permit_no for c in self.physical.values() if c.ssn == ssn), None)

    async def claim_request(self, request_id: uuid.UUID, event_id: uuid.UUID, subject: str) -> bool:
        """Claim the request id; False if it was claimed before."""
        if request_id in self.requests:
            return False
        self.requests[request_id] = (event_id, subject, None, None)
        return True

    async def settle_request(self, request_id: uuid.UUID, outcome: str, reason: str | None) -> None:
        """Record how the request was answered."""
        event_id, subject, _, _ = self.requests[request_id]
        self.requests[request_id] = (event_id, subject, outcome, reason)

    async def ecard(self, permit_no: str) -> ECard | None:
        """The permit's e-card, if any."""
        return self.ecards.get(permit_no)

    async def add_ecard(self, card: ECard) -> bool:
        """Store an e-card; False if the permit has one (the primary key)."""
        if card.permit_no in self.ecards:
            return False
        if any(c.card_id == card.card_id for c in self.ecards.values()):
            raise ConstraintViolation(f"card id {card.card_id} is taken")
        self.ecards[card.permit_no] = card
        return True

    async def with_ecards(self, permit_nos: Iterable[str]) -> set[str]:
        """Those of these permits that have an e-card."""
        return set(permit_nos) & set(self.ecards)

    async def mark_notified(self, permit_no: str, sequence: int) -> bool:
        """Move the e-card's notified sequence forward; False if not newer."""
        card = self.ecards.get(permit_no)
        if card is None or card.notified_sequence >= sequence:
            return False
        self.ecards[permit_no] = card._replace(notified_sequence=sequence)
        return True

    async def link_ssn(self, permit_no: str, ssn: str, card_id: str) -> None:
        """Link the SSN and the e-card both ways."""
        if permit_no in self.ecards:
            self.ecards[permit_no] = self.ecards[permit_no]._replace(ssn=ssn)
        if permit_no in self.physical:
            self.physical[permit_no] = self.physical[permit_no]._replace(ecard_id=card_id)

    async def record_token(self, token: str, claims: Claims, purpose: str) -> None:
        """Keep the token issued (the database keeps only its hash)."""
        self.tokens.append((token, claims, purpose))

    async def physical_card(self, permit_no: str) -> PhysicalCard | None:
        """The permit's physical card, if issued."""
        return self.physical.get(permit_no)

    async def add_physical_card(self, card: PhysicalCard) -> bool:
        """Store a physical card; False if the permit or the SSN has one."""
        if card.permit_no in self.physical or await self.permit_no_of_ssn(card.ssn):
            return False
        self.physical[card.permit_no] = card
        return True

    async def move_physical_card(self, ssn: str, permit_no: str,
                                 ecard_id: str | None) -> PhysicalCard:
        """Carry the SSN's physical card over to another permit (and its e-card)."""
        old = next(c for c in self.physical.values() if c.ssn == ssn)
        del self.physical[old.permit_no]
        card = old._replace(permit_no=permit_no, ecard_id=ecard_id)
        self.physical[permit_no] = card
        return card

    async def record_notice(self, notice: Notice) -> bool:
        """Store a notice; False if its (permit, dedup key) was stored before."""
        key = (notice.permit_no, notice.dedup_key)
        if key in self.notices:
            return False
        self.notices[key] = notice
        return True

    async def carded_permits_ending(
        self, first: date, last: date
    ) -> list[tuple[CardPermit, ECard]]:
        """Active carded permits ending between `first` and `last`, by end then number."""
        return sorted(
            ((p, self.ecards[n]) for n, p in self.permits.items()
             if n in self.ecards and p.status == "active" and p.valid_until is not None
             and first <= p.valid_until <= last),
            key=lambda pair: (pair[0].valid_until, pair[0].permit_no),
        )


# public security ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResidence:
    """A row of `ps_residence_permits`."""

    residence_permit_no: str
    permit_no: str
    application_id: str
    valid_from: date
    valid_until: date
    status: str
    extension_available_until: date | None = None
    cancel_by: date | None = None
    changed_particulars: tuple[str, ...] | None = None
    particulars_changed_on: date | None = None
    change_report_by: date | None = None
    work_permit_cancelled_on: date | None = None
    cancelled_on: date | None = None


@dataclass(frozen=True)
class StoredApplication:
    """A row of `ps_applications`."""

    event_id: uuid.UUID
    application_id: str
    permit_no: str
    presented: str
    outcome: str
    reason: str | None
    message: str | None
    residence_permit_no: str | None
    purpose: str = "first"
    entry_date: date | None = None
    applied_on: date | None = None
    requested_until: date | None = None
    referral: str | None = None


@dataclass(frozen=True)
class StoredOfficerDecision:
    """A row of `ps_officer_decisions`."""

    event_id: uuid.UUID
    kind: str
    target: str
    verdict: str
    officer_id: str
    decided_at: datetime
    reason: str


_APPLICATION_OUTCOMES = ("issued", "extended", "rejected", "referred")


class MemoryPublicSecurityView:
    """Public security's view port, in memory, with the database's keys and unique indexes."""

    def __init__(self) -> None:
        self.permits: dict[str, CheckedPermit] = {}
        self.residences: dict[str, StoredResidence] = {}  # by residence_permit_no
        self.applications: list[StoredApplication] = []
        self.accepted_tokens: dict[tuple[bytes, str], tuple[str, uuid.UUID, datetime]] = {}
        self.officer_decisions: list[StoredOfficerDecision] = []
        self._numbers = 0

    def project(self, event: PermitEvent) -> None:
        """Apply a permit event as the router's projection would."""
        row = checked_permit(event)
        held = self.permits.get(row.permit_no)
        if held is None or held.sequence < row.sequence:  # the upsert's sequence guard
            self.permits[row.permit_no] = row

    def residence_of(self, permit_no: str) -> StoredResidence | None:
        """The latest residence permit on a work permit (numbers are given in order)."""
        mine = [r for r in self.residences.values() if r.permit_no == permit_no]
        return max(mine, key=lambda r: r.residence_permit_no) if mine else None

    async def permit(self, permit_no: str) -> ResidencePermitFacts | None:
        """The work permit as the view holds it."""
        p = self.permits.get(permit_no)
        if p is None:
            return None
        return ResidencePermitFacts(p.permit_no, p.status, p.standard, p.valid_from,
                                    p.valid_until)

    async def residence(self, permit_no: str) -> ResidenceFacts | None:
        """The residence permit issued on this work permit."""
        r = self.residence_of(permit_no)
        if r is None:
            return None
        return ResidenceFacts(r.residence_permit_no, r.status, r.valid_from, r.valid_until)

    async def decided(self, application_id: str) -> str | None:
        """The first decision's reason or outcome for this application id."""
        row = self._decision(application_id)
        return None if row is None else row.reason or row.outcome

    def _decision(self, application_id: str) -> StoredApplication | None:
        return next((a for a in self.applications if a.application_id == application_id
                     and a.reason != "duplicate_application"), None)

    async def record(
        self,
        event_id: uuid.UUID,
        permit_no: str,
        app: ResidencePermitAppliedData,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
        residence_permit_no: str | None = None,
        referral: str | None = None,
    ) -> None:
        """Store the application; the event id and the decided application id are unique."""
        if outcome not in _APPLICATION_OUTCOMES:
            raise ConstraintViolation(f"outcome {outcome!r}")
        if any(a.event_id == event_id for a in self.applications):
            raise ConstraintViolation(f"event {event_id} is recorded")
        if reason != "duplicate_application" and self._decision(app.application_id):
            raise ConstraintViolation(f"application {app.application_id} is decided")
        self.applications.append(StoredApplication(
            event_id, app.application_id, permit_no, app.presented.kind, outcome, reason,
            message, residence_permit_no, app.purpose.value, app.entry_date, app.applied_on,
            app.requested_until, referral))

    async def issue(
        self, permit_no: str, application_id: str, valid_from: date, valid_until: date
    ) -> str:
        """Store a residence permit; an earlier one that ended is expired; one in force."""
        for r in list(self.residences.values()):
            if r.permit_no == permit_no and r.status == "issued" and r.valid_until < valid_from:
                self.residences[r.residence_permit_no] = dataclasses.replace(r, status="expired")
        if any(r.permit_no == permit_no and r.status == "issued"
               for r in self.residences.values()):
            raise ConstraintViolation(f"work permit {permit_no} has a residence permit in force")
        self._numbers += 1
        number = f"RP{self._numbers:010d}"
        self.residences[number] = StoredResidence(number, permit_no, application_id, valid_from,
                                                  valid_until, "issued")
        return number

    async def extend(self, residence_permit_no: str, valid_until: date) -> None:
        """Move the end; the extension offer is used up."""
        held = self.residences.get(residence_permit_no)
        if held is not None:  # an UPDATE that matches no row changes nothing
            self.residences[residence_permit_no] = dataclasses.replace(
                held, valid_until=valid_until, extension_available_until=None)

    async def offer_extension(self, residence_permit_no: str, until: date) -> None:
        """Note the extension on offer."""
        held = self.residences.get(residence_permit_no)
        if held is not None:
            self.residences[residence_permit_no] = dataclasses.replace(
                held, extension_available_until=until)

    async def accept_token(
        self, digest: bytes, purpose: str, application_id: str, event_id: uuid.UUID,
        expires_at: datetime,
    ) -> bool:
        """Record the token's digest for `purpose`; (digest, purpose) is the primary key."""
        if (digest, purpose) in self.accepted_tokens:  # ON CONFLICT DO NOTHING
            return False
        self.accepted_tokens[digest, purpose] = (application_id, event_id, expires_at)
        return True

    async def require_cancellation(
        self, residence_permit_no: str, cancel_by: date | None, work_permit_cancelled_on: date
    ) -> None:
        """Mark the residence permit for cancellation: a case opens."""
        held = self.residences.get(residence_permit_no)
        if held is not None:
            self.residences[residence_permit_no] = dataclasses.replace(
                held, status="cancellation_required", cancel_by=cancel_by,
                work_permit_cancelled_on=work_permit_cancelled_on)

    async def application(self, application_id: str) -> ApplicationFacts | None:
        """The first decision's row for this application id."""
        a = self._decision(application_id)
        if a is None:
            return None
        assert a.applied_on is not None
        assert a.requested_until is not None
        return ApplicationFacts(a.application_id, a.permit_no, a.outcome, a.purpose,
                                a.presented, a.entry_date, a.applied_on, a.requested_until,
                                a.referral)

    async def settle(
        self, application_id: str, outcome: str, *, reason: str | None = None,
        message: str | None = None, residence_permit_no: str | None = None,
    ) -> None:
        """Settle a referred application (an UPDATE ... WHERE outcome = 'referred')."""
        if outcome not in _APPLICATION_OUTCOMES:
            raise ConstraintViolation(f"outcome {outcome!r}")
        for i, a in enumerate(self.applications):
            if a.application_id == application_id and a.outcome == "referred":
                self.applications[i] = dataclasses.replace(
                    a, outcome=outcome, reason=reason, message=message,
                    residence_permit_no=residence_permit_no)

    async def officer_decision(self, kind: str, target: str) -> str | None:
        """The verdict stored for this application or case."""
        return next((d.verdict for d in self.officer_decisions
                     if (d.kind, d.target) == (kind, target)), None)

    async def record_officer_decision(
        self, event_id: uuid.UUID, kind: str, target: str, verdict: str, officer_id: str,
        decided_at: datetime, reason: str,
    ) -> None:
        """Store the decision; the event id and (kind, target) are unique."""
        if any(d.event_id == event_id or (d.kind, d.target) == (kind, target)
               for d in self.officer_decisions):
            raise ConstraintViolation(f"{kind} {target} has an officer's decision")
        if len(reason) > 200:
            raise ConstraintViolation("reason longer than 200 characters")
        self.officer_decisions.append(StoredOfficerDecision(
            event_id, kind, target, verdict, officer_id, decided_at, reason))

    async def cancellation_case(self, residence_permit_no: str) -> CancellationCase | None:
        """The residence permit as a cancellation case."""
        r = self.residences.get(residence_permit_no)
        if r is None:
            return None
        return CancellationCase(r.residence_permit_no, r.permit_no, r.status, r.valid_from,
                                r.work_permit_cancelled_on, r.cancelled_on)

    async def close_cancellation(self, residence_permit_no: str, cancelled_on: date) -> None:
        """Cancel the residence permit whose case is open."""
        held = self.residences.get(residence_permit_no)
        if held is not None and held.status == "cancellation_required":
            self.residences[residence_permit_no] = dataclasses.replace(
                held, status="cancelled", cancelled_on=cancelled_on)

    async def names_holder(self, permit_no: str, text: str) -> bool:
        """Whether the text contains the holder's name or passport number."""
        p = self.permits.get(permit_no)
        return p is not None and names(text, p.holder_name, p.passport_no)

    async def require_change(
        self, residence_permit_no: str, changed: Sequence[str], changed_on: date, report_by: date
    ) -> None:
        """Note the particulars to change; earlier outstanding ones stay listed."""
        held = self.residences.get(residence_permit_no)
        if held is not None:
            fields = sorted(set(held.changed_particulars or ()) | set(changed))
            self.residences[residence_permit_no] = dataclasses.replace(
                held, changed_particulars=tuple(fields), particulars_changed_on=changed_on,
                change_report_by=report_by)


# social insurance -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAccount:
    """A row of `si_accounts`."""

    ssn: str
    status: str
    opened_on: date
    current_permit_no: str


@dataclass(frozen=True)
class StoredRegistration:
    """A row of `si_registrations`."""

    request_id: str
    permit_no: str
    ssn: str
    cover: Cover
    deadline: date
    late: bool
    status: str = "active"
    suspended_on: date | None = None
    suspension_cause: str | None = None


@dataclass(frozen=True)
class StoredRequest:
    """A row of `si_requests`."""

    event_id: uuid.UUID
    request_id: str
    reference_kind: str
    reference: str
    permit_no: str | None
    outcome: str
    reason: str | None
    message: str | None
    request: InsuranceRegistrationRequestedData | None = None


@dataclass(frozen=True)
class StoredReview:
    """A row of `si_reviews`."""

    event_id: uuid.UUID
    decision: InsuranceReviewDecidedData
    outcome: str


_REQUEST_OUTCOMES = ("registered", "rejected", "referred")


TEST_KEYS = PersonKeys(bytes(range(32)))
"""A pepper for tests only: the person keys the in-memory agency makes."""


class MemorySocialInsuranceView:
    """The agency's view port, in memory, with the database's keys and unique indexes."""

    def __init__(self, keys: PersonKeys = TEST_KEYS) -> None:
        self.keys = keys
        self.permits: dict[str, InsuredPermit] = {}
        self.letters: dict[str, str] = {}
        self.ecards: dict[str, str] = {}
        self.accounts: dict[str, StoredAccount] = {}
        self.person_keys: dict[str, str] = {}
        self.registrations: dict[str, StoredRegistration] = {}  # by request_id
        self.requests: list[StoredRequest] = []
        self.reviews: dict[str, StoredReview] = {}  # by request_id

    def project(self, event: PermitEvent) -> None:
        """Apply a permit event as the router's projection would."""
        row = insured_permit(event, self.keys)
        held = self.permits.get(row.permit_no)
        if held is None or held.sequence < row.sequence:  # the upsert's sequence guard
            self.permits[row.permit_no] = row

    async def permit(self, permit_no: str) -> InsurancePermitFacts | None:
        """The permit as the view holds it."""
        p = self.permits.get(permit_no)
        if p is None:
            return None
        return InsurancePermitFacts(p.permit_no, p.status, p.standard, p.nationality,
                                    p.employer_credit_code, p.issued_on, p.valid_from,
                                    p.valid_until)

    async def holder_key(self, permit_no: str) -> str | None:
        """The holder's passport person key."""
        p = self.permits.get(permit_no)
        return None if p is None else p.holder_key

    async def permits_in_force_of(self, keys: Sequence[str]) -> list[InsurancePermitFacts]:
        """The person's permits not yet ended, by their keys and their account's keys."""
        accounts = {self.person_keys[k] for k in keys if k in self.person_keys}
        known = set(keys) | {k for k, ssn in self.person_keys.items() if ssn in accounts}
        found = [await self.permit(no) for no, p in sorted(self.permits.items())
                 if p.holder_key in known and p.status in ("letter_issued", "active")]
        return [f for f in found if f is not None]

    async def permit_of_letter(self, letter_no: str) -> str | None:
        """The permit a letter names."""
        return self.letters.get(letter_no)

    async def permit_of_card(self, card_id: str) -> str | None:
        """The permit an e-card shows."""
        return self.ecards.get(card_id)

    async def remember_letter(self, letter_no: str, permit_no: str) -> None:
        """Remember the letter; the first record stands."""
        self.letters.setdefault(letter_no, permit_no)

    async def remember_card(self, card_id: str, permit_no: str) -> None:
        """Remember the e-card; the first record stands."""
        self.ecards.setdefault(card_id, permit_no)

    async def decided(self, request_id: str) -> str | None:
        """The first decision's outcome for this request id."""
        row = self._decision(request_id)
        return None if row is None else row.outcome

    def _decision(self, request_id: str) -> StoredRequest | None:
        return next((r for r in self.requests if r.request_id == request_id
                     and r.reason != "duplicate_request"), None)

    async def registration_in_force(self, permit_no: str) -> str | None:
        """The SSN of the permit's active registration."""
        active = self._active(permit_no)
        return None if active is None else active.ssn

    def _active(self, permit_no: str) -> StoredRegistration | None:
        return next((r for r in self.registrations.values()
                     if r.permit_no == permit_no and r.status == "active"), None)

    async def review_pending(self, permit_no: str) -> bool:
        """Whether a request for this permit was referred and no reviewer decided it yet."""
        return any(r.permit_no == permit_no and r.outcome == "referred"
                   and r.request_id not in self.reviews for r in self.requests)

    async def referral(self, request_id: str) -> Referral | None:
        """The request with this id, if it was referred."""
        row = self._decision(request_id)
        if row is None or row.outcome != "referred" or row.permit_no is None:
            return None
        assert row.request is not None
        return Referral(row.request, row.permit_no)

    async def review_of(self, request_id: str) -> Review | None:
        """The reviewer's decision applied to this request id."""
        found = self.reviews.get(request_id)
        if found is None:
            return None
        d = found.decision
        return Review(found.event_id, d.decision.value, tuple(i.value for i in d.exempt),
                      found.outcome)

    async def record_review(
        self, event_id: uuid.UUID, decision: InsuranceReviewDecidedData, *, outcome: str
    ) -> None:
        """Store the review: one per request id, and one per event id."""
        if outcome not in ("registered", "rejected"):
            raise ConstraintViolation(f"outcome {outcome!r}")
        if decision.request_id in self.reviews:
            raise ConstraintViolation(f"request {decision.request_id} is reviewed")
        if any(r.event_id == event_id for r in self.reviews.values()):
            raise ConstraintViolation(f"event {event_id} is recorded")
        self.reviews[decision.request_id] = StoredReview(event_id, decision, outcome)

    async def record(
        self,
        event_id: uuid.UUID,
        request: InsuranceRegistrationRequestedData,
        reference: str,
        permit_no: str | None,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Store the request; the event id and the decided request id are unique."""
        if outcome not in _REQUEST_OUTCOMES:
            raise ConstraintViolation(f"outcome {outcome!r}")
        if any(r.event_id == event_id for r in self.requests):
            raise ConstraintViolation(f"event {event_id} is recorded")
        if reason != "duplicate_request" and self._decision(request.request_id):
            raise ConstraintViolation(f"request {request.request_id} is decided")
        self.requests.append(StoredRequest(event_id, request.request_id, request.reference.kind,
                                           reference, permit_no, outcome, reason, message,
                                           request))

    async def register(
        self,
        request: InsuranceRegistrationRequestedData,
        permit_no: str,
        ssn: str,
        cover: Cover,
        *,
        deadline: date,
        late: bool,
    ) -> None:
        """Store a registration in force: one per request id, one active per permit."""
        if request.request_id in self.registrations:
            raise ConstraintViolation(f"request {request.request_id} is registered")
        if self._active(permit_no) is not None:
            raise ConstraintViolation(f"permit {permit_no} has a registration in force")
        if ssn not in self.accounts:
            raise ConstraintViolation(f"no account {ssn}")
        self.registrations[request.request_id] = StoredRegistration(
            request.request_id, permit_no, ssn, cover, deadline, late)
        self.accounts[ssn] = dataclasses.replace(self.accounts[ssn], status="active",
                                                 current_permit_no=permit_no)

    async def suspend(self, permit_no: str, on: date, cause: str) -> str | None:
        """Suspend the active registration; the account too when none of its own is left."""
        active = self._active(permit_no)
        if active is None:
            return None
        self.registrations[active.request_id] = dataclasses.replace(
            active, status="suspended", suspended_on=on, suspension_cause=cause)
        if not any(r.ssn == active.ssn and r.status == "active"
                   for r in self.registrations.values()):
            self.accounts[active.ssn] = dataclasses.replace(self.accounts[active.ssn],
                                                            status="suspended")
        return active.ssn

    async def account_for(
        self, keys: Sequence[str], permit_no: str, today: date, new_ssn: Callable[[], str]
    ) -> tuple[str, bool]:
        """The one account the keys name, or a new one; AmbiguousPerson if they name two."""
        found = {self.person_keys[k] for k in keys if k in self.person_keys}
        if len(found) > 1:
            raise AmbiguousPerson(f"the holder of permit {permit_no} matches {len(found)} accounts")
        created = not found
        ssn = found.pop() if found else self._open_account(permit_no, today, new_ssn)
        await self.add_keys(ssn, keys)
        return ssn, created

    def _open_account(self, permit_no: str, today: date, new_ssn: Callable[[], str]) -> str:
        while True:
            ssn = new_ssn()
            if ssn not in self.accounts:  # a drawn SSN that exists is drawn again
                self.accounts[ssn] = StoredAccount(ssn, "active", today, permit_no)
                return ssn

    async def add_keys(self, ssn: str, keys: Sequence[str]) -> None:
        """Let the keys name the account; a key already naming one keeps it."""
        if ssn not in self.accounts:
            raise ConstraintViolation(f"no account {ssn}")
        for k in keys:
            self.person_keys.setdefault(k, ssn)


if TYPE_CHECKING:
    # mypy proves the memory views satisfy the same ports as the Postgres ones.
    _CARD: type[CardViewPort] = MemoryCardView
    _PUBLIC_SECURITY: type[PublicSecurityViewPort] = MemoryPublicSecurityView
    _SOCIAL_INSURANCE: type[SocialInsuranceViewPort] = MemorySocialInsuranceView
