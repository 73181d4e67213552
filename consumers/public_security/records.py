"""The rows public security keeps in its own database, as plain named tuples."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple


class CheckedPermit(NamedTuple):
    """A permit as public security keeps it for residence-permit decisions."""

    permit_no: str
    sequence: int
    status: str
    standard: str
    holder_name: str
    nationality: str
    passport_no: str
    passport_expiry: date
    employer_city: str
    valid_from: date | None
    valid_until: date | None
    cancelled_on: date | None
