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
    passport_no: str
    date_of_birth: date
    employer_credit_code: str
    employer_name: str
    issued_on: date | None
    valid_from: date | None
    valid_until: date | None
