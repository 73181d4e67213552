"""The rows the social insurance agency keeps in its own database, as plain named tuples."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple
from uuid import UUID

from schemas.social_insurance import InsuranceRegistrationRequestedData


class InsuredPermit(NamedTuple):
    """A permit as the social insurance agency keeps it."""

    permit_no: str
    sequence: int
    status: str
    standard: str
    holder_name: str
    nationality: str
    holder_key: str
    """The holder's passport person key (`identity.PersonKeys.passport`): the passport
    number and the date of birth are not kept, only what finds the person again."""
    employer_credit_code: str
    employer_name: str
    issued_on: date | None
    valid_from: date | None
    valid_until: date | None


class Referral(NamedTuple):
    """A request waiting in manual review: as it was asked, and the permit it named."""

    request: InsuranceRegistrationRequestedData
    permit_no: str


class Review(NamedTuple):
    """A reviewer's decision as the agency applied it."""

    event_id: UUID
    decision: str
    exempt: tuple[str, ...]
    outcome: str
