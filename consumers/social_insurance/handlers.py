"""What the social insurance agency does with the permit lifecycle.

It registers foreign employees: it needs the employer (credit code), the nationality (for
bilateral-agreement exemptions), the issue date (the employer's 30-day deadline) and the
permit's status and validity (DOMAIN.md §2, social insurance).
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from schemas.permits import PermitEvent


class InsuredPermit(NamedTuple):
    """A permit as the social insurance agency keeps it."""

    permit_no: str
    sequence: int
    status: str
    holder_name: str
    nationality: str
    employer_credit_code: str
    employer_name: str
    issued_on: date | None
    valid_from: date | None
    valid_until: date | None


def insured_permit(event: PermitEvent) -> InsuredPermit:
    """Social insurance's row for the permit this event carries."""
    p = event.data.permit
    return InsuredPermit(
        permit_no=p.permit_no,
        sequence=event.sequence,
        status=p.status.value,
        holder_name=p.holder.name,
        nationality=p.holder.nationality,
        employer_credit_code=p.employer.credit_code,
        employer_name=p.employer.name,
        issued_on=p.issued_on,
        valid_from=p.valid_from,
        valid_until=p.valid_until,
    )
