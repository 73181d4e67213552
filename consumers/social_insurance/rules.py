"""The social insurance agency's registration rules, as pure functions of what it knows.

Sources (docs/domain.md §2, social insurance): foreign employees join the five insurances and
the employer registers within 30 days of the permit's issue (MOHRSS Decree 16, 2011,
amended by Decree 54, 2024) [C]; a late registration is accepted and flagged (the issue's
rule). Nationals seconded from a country with a bilateral agreement may be exempt on
presenting the certificate of coverage; the exemptions are policy data
(`agreements.toml`), and a row that is not confirmed goes to manual review. Legacy permits
are honoured as they are [C]: nothing here asks for the integrated standard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from consumers.social_insurance.agreements import Agreements
from schemas.social_insurance import (
    Insurance,
    InsuranceRegistrationRequestedData,
    InsuranceRejection,
    ReferralReason,
)

REGISTRATION_DEADLINE_DAYS = 30
"""Decree 16: the employer registers within 30 days of the permit's issue [C]."""

FIVE_INSURANCES: tuple[Insurance, ...] = tuple(Insurance)
"""Pension, medical, work injury, unemployment, maternity, in that order."""


@dataclass(frozen=True)
class PermitFacts:
    """What the agency's view holds about a permit, for one decision."""

    permit_no: str
    status: str
    standard: str
    nationality: str
    employer_credit_code: str
    issued_on: date | None
    valid_from: date | None
    valid_until: date | None = None


IN_FORCE = ("letter_issued", "active")
"""The statuses of a permit that has not ended (the letter stage is refused, but is current)."""


@dataclass(frozen=True)
class Refuse:
    """Reject the request."""

    reason: InsuranceRejection
    message: str


@dataclass(frozen=True)
class Refer:
    """Send the request to manual review."""

    agreement: str
    reason: ReferralReason
    message: str


@dataclass(frozen=True)
class Cover:
    """Register with these insurances contributed and these exempt."""

    insured: tuple[Insurance, ...]
    exempt: tuple[Insurance, ...]
    agreement: str | None


@dataclass(frozen=True)
class Register:
    """Register: the coverage, and the employer's deadline."""

    cover: Cover
    deadline: date
    late: bool


Decision = Refuse | Refer | Register


def check_permit(permit: PermitFacts, on: date | None = None) -> Refuse | None:
    """Refuse unless the permit is in force (issued after entry, not cancelled or expired)
    and, when `on` is given, not past its last day on that date: the authority's calendar
    may expire it a day later, but a registration never runs past the permit's end."""
    no = permit.permit_no
    if permit.status == "letter_issued":
        return Refuse(InsuranceRejection.PERMIT_NOT_ACTIVE,
                      f"permit {no} is at the notification-letter stage; register once it is "
                      "issued after entry (the 30 days count from then)")
    if permit.status == "lapsed":
        return Refuse(InsuranceRejection.PERMIT_NOT_ACTIVE,
                      f"the notification letter of permit {no} lapsed before the permit was "
                      "issued; register once a new application is approved and issued")
    if permit.status == "cancelled":
        return Refuse(InsuranceRejection.PERMIT_CANCELLED, f"permit {no} is cancelled")
    if permit.status == "expired":
        return Refuse(InsuranceRejection.PERMIT_EXPIRED, f"permit {no} has expired")
    if on is not None and permit.valid_until is not None and on > permit.valid_until:
        return Refuse(InsuranceRejection.PERMIT_EXPIRED,
                      f"permit {no} ended on {permit.valid_until.isoformat()}; a registration"
                      f" on {on.isoformat()} would run past its end")
    return None


def decide(
    request: InsuranceRegistrationRequestedData,
    permit: PermitFacts,
    agreements: Agreements,
    *,
    registered: bool = False,
    in_review: bool = False,
) -> Decision:
    """The decision on a registration request for `permit`.

    `registered`: the permit has a registration in force; `in_review`: a request for it
    waits in manual review. Both are told only to the permit's own employer.
    """
    refused = check_permit(permit, request.requested_on)
    if refused is not None:
        return refused
    if request.employer_credit_code != permit.employer_credit_code:
        return Refuse(InsuranceRejection.EMPLOYER_MISMATCH,
                      f"employer {request.employer_credit_code} is not the employer on permit "
                      f"{permit.permit_no}")
    if registered:
        return Refuse(InsuranceRejection.ALREADY_REGISTERED,
                      f"permit {permit.permit_no} is registered already; that registration "
                      "stands")
    if in_review:
        return Refuse(InsuranceRejection.REVIEW_PENDING,
                      f"a registration for permit {permit.permit_no} is in manual review")
    cover = coverage(permit.nationality, request.certificate_of_coverage, request.requested_on,
                     agreements)
    if isinstance(cover, Refer):
        return cover
    deadline = registration_deadline(permit)
    return Register(cover, deadline, late=request.requested_on > deadline)


def registration_deadline(permit: PermitFacts) -> date:
    """30 days after the permit's issue (its start, when the issue date is not recorded)."""
    issued = permit.issued_on or permit.valid_from
    assert issued is not None, "an active permit has an issue date or a start"
    return issued + timedelta(days=REGISTRATION_DEADLINE_DAYS)


def coverage(
    nationality: str, certificate: bool, on: date, agreements: Agreements
) -> Cover | Refer:
    """The five insurances, minus a confirmed agreement's exemptions; review when unconfirmed."""
    agreement = agreements.get(nationality)
    if agreement is None or not certificate:
        return Cover(FIVE_INSURANCES, (), None)
    if not agreement.confirmed:
        return Refer(agreement.country, ReferralReason.AGREEMENT_UNCONFIRMED,
                     f"the insurances covered by the agreement with {agreement.name} are not "
                     "confirmed; a reviewer decides the exemption from the certificate")
    in_force = agreement.in_force_on(on)
    if in_force is None:
        return Refer(agreement.country, ReferralReason.AGREEMENT_IN_FORCE_UNKNOWN,
                     f"the date the agreement with {agreement.name} came into force is not "
                     "confirmed; a reviewer decides whether it applies")
    if not in_force:
        return Cover(FIVE_INSURANCES, (), None)  # not yet in force on the request date
    exempt = tuple(i for i in FIVE_INSURANCES if i in agreement.exempt)
    insured = tuple(i for i in FIVE_INSURANCES if i not in agreement.exempt)
    return Cover(insured, exempt, agreement.country)
