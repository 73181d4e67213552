"""What the card service's handlers need of its database, as a port (`typing.Protocol`).

`consumers.card.views.CardView` is the Postgres implementation; the unit tests use an
in-memory one. The handlers depend on this port only, never on the database's class.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Protocol

from consumers.card.records import CardPermit, ECard, Notice, PhysicalCard
from schemas.permit_token import Claims


class CardViewPort(Protocol):
    """The card service's reads and writes that its handlers make, in the caller's transaction."""

    async def permit(self, permit_no: str) -> CardPermit | None:
        """The permit as the card service holds it."""

    async def permit_no_of_ssn(self, ssn: str) -> str | None:
        """The permit whose holder social insurance gave this SSN, if the service heard of it."""

    async def claim_request(self, request_id: uuid.UUID, event_id: uuid.UUID, subject: str) -> bool:
        """Record that this request is being answered; False if it was answered already."""

    async def settle_request(self, request_id: uuid.UUID, outcome: str, reason: str | None) -> None:
        """Record how the request was answered."""

    async def ecard(self, permit_no: str) -> ECard | None:
        """The permit's e-card, if it has one."""

    async def add_ecard(self, card: ECard) -> bool:
        """Store a new e-card; False (and nothing stored) if the permit already has one."""

    async def mark_notified(self, permit_no: str, sequence: int) -> bool:
        """Move the e-card's last notified permit event forward; False if it is not newer."""

    async def link_ssn(self, permit_no: str, ssn: str, card_id: str) -> None:
        """Link the SSN and the e-card both ways: on the e-card and on the physical card."""

    async def record_token(self, token: str, claims: Claims, purpose: str) -> None:
        """Keep a record of a QR token issued."""

    async def physical_card(self, permit_no: str) -> PhysicalCard | None:
        """The permit holder's physical card, if issued."""

    async def add_physical_card(self, card: PhysicalCard) -> bool:
        """Store a new physical card; False if the permit or the SSN already has one."""

    async def move_physical_card(self, ssn: str, permit_no: str,
                                 ecard_id: str | None) -> PhysicalCard:
        """Carry the SSN's physical card over to another permit, linked to its e-card (if
        any); the card as it is now."""

    async def record_notice(self, notice: Notice) -> bool:
        """Store a notification; False if the same one (permit, dedup key) was sent before."""

    async def carded_permits_ending(
        self, first: date, last: date
    ) -> list[tuple[CardPermit, ECard]]:
        """Active permits with an e-card whose validity ends between `first` and `last`."""
