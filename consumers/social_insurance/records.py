"""The rows the social insurance agency keeps in its own database, as plain named tuples."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple


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
