"""What public security (entry-exit administration) does with the permit lifecycle.

It checks permits when deciding work-type residence permits (DOMAIN.md §2): the holder's
identity and passport, the employer's place of work, and the permit's status and validity.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from schemas.permits import PermitEvent


class CheckedPermit(NamedTuple):
    """A permit as public security keeps it for residence-permit decisions."""

    permit_no: str
    sequence: int
    status: str
    holder_name: str
    nationality: str
    passport_no: str
    passport_expiry: date
    employer_city: str
    valid_from: date | None
    valid_until: date | None
    cancelled_on: date | None


def checked_permit(event: PermitEvent) -> CheckedPermit:
    """Public security's row for the permit this event carries."""
    p = event.data.permit
    return CheckedPermit(
        permit_no=p.permit_no,
        sequence=event.sequence,
        status=p.status.value,
        holder_name=p.holder.name,
        nationality=p.holder.nationality,
        passport_no=p.holder.passport_no,
        passport_expiry=p.holder.passport_expiry,
        employer_city=f"{p.employer.province}/{p.employer.city}",
        valid_from=p.valid_from,
        valid_until=p.valid_until,
        cancelled_on=p.cancelled_on,
    )
