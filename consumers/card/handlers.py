"""What the Social Security Card service does with the permit lifecycle.

The card shows the permit's information (DOMAIN.md §1): holder, nationality, category,
employer, position, validity and status. A legacy permit is shown as it is.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from schemas.permits import PermitEvent


class CardPermit(NamedTuple):
    """A permit as the card service keeps it."""

    permit_no: str
    sequence: int
    status: str
    standard: str
    holder_name: str
    nationality: str
    category: str
    employer_name: str
    position: str
    valid_from: date | None
    valid_until: date | None
    last_event: str


def card_permit(event: PermitEvent) -> CardPermit:
    """The card service's row for the permit this event carries."""
    p = event.data.permit
    return CardPermit(
        permit_no=p.permit_no,
        sequence=event.sequence,
        status=p.status.value,
        standard=p.standard.value,
        holder_name=p.holder.name,
        nationality=p.holder.nationality,
        category=p.category.value,
        employer_name=p.employer.name,
        position=p.position,
        valid_from=p.valid_from,
        valid_until=p.valid_until,
        last_event=event.type.rsplit(".", 1)[-1],
    )
