"""The Social Security Card service's own database: permits as shown on the card, e-cards,
QR tokens issued, physical cards, notifications, and the registration requests answered."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

from consumers.card.records import CardPermit, ECard, Notice, PhysicalCard
from hub.db import Connection
from hub.projection import ViewTable
from schemas.permit_token import Claims

PERMITS = ViewTable("card_permits", CardPermit._fields)


class CardView:
    """The card service's reads and writes of its own database, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # permits ---------------------------------------------------------------------------

    async def permit(self, permit_no: str) -> CardPermit | None:
        """The permit as the card service holds it."""
        row = await self.conn.fetchrow(
            f"SELECT {', '.join(CardPermit._fields)} FROM card_permits WHERE permit_no = $1",
            permit_no,
        )
        return CardPermit(*row) if row is not None else None

    async def permit_no_of_ssn(self, ssn: str) -> str | None:
        """The permit whose holder social insurance gave this SSN, if the service heard of it."""
        found: str | None = await self.conn.fetchval(
            "SELECT permit_no FROM card_physical_cards WHERE ssn = $1", ssn
        )
        return found

    # registration requests -------------------------------------------------------------

    async def claim_request(self, request_id: uuid.UUID, event_id: uuid.UUID, subject: str) -> bool:
        """Record that this request is being answered; False if it was answered already."""
        claimed = await self.conn.fetchval(
            "INSERT INTO card_requests (request_id, event_id, subject) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            request_id, event_id, subject,
        )
        return bool(claimed)

    async def settle_request(self, request_id: uuid.UUID, outcome: str, reason: str | None) -> None:
        """Record how the request was answered."""
        await self.conn.execute(
            "UPDATE card_requests SET outcome = $2, reason = $3 WHERE request_id = $1",
            request_id, outcome, reason,
        )

    # e-cards and tokens ----------------------------------------------------------------

    async def ecard(self, permit_no: str) -> ECard | None:
        """The permit's e-card, if it has one."""
        row = await self.conn.fetchrow(
            f"SELECT {', '.join(ECard._fields)} FROM card_ecards WHERE permit_no = $1", permit_no
        )
        return ECard(*row) if row is not None else None

    async def add_ecard(self, card: ECard) -> bool:
        """Store a new e-card; False (and nothing stored) if the permit already has one."""
        added = await self.conn.fetchval(
            f"INSERT INTO card_ecards ({', '.join(ECard._fields)}) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT DO NOTHING RETURNING true",
            *card,
        )
        return bool(added)

    async def with_ecards(self, permit_nos: Iterable[str]) -> set[str]:
        """Those of these permits that have an e-card."""
        rows = await self.conn.fetch(
            "SELECT permit_no FROM card_ecards WHERE permit_no = ANY($1::text[])", list(permit_nos)
        )
        return {r["permit_no"] for r in rows}

    async def mark_notified(self, permit_no: str, sequence: int) -> bool:
        """Move the e-card's last notified permit event forward; False if it is not newer."""
        moved = await self.conn.fetchval(
            "UPDATE card_ecards SET notified_sequence = $2"
            " WHERE permit_no = $1 AND notified_sequence < $2 RETURNING true",
            permit_no, sequence,
        )
        return bool(moved)

    async def link_ssn(self, permit_no: str, ssn: str, card_id: str) -> None:
        """Link the SSN and the e-card both ways: on the e-card and on the physical card."""
        await self.conn.execute(
            "UPDATE card_ecards SET ssn = $2 WHERE permit_no = $1", permit_no, ssn
        )
        await self.conn.execute(
            "UPDATE card_physical_cards SET ecard_id = $2 WHERE permit_no = $1", permit_no, card_id
        )

    async def record_token(self, token: str, claims: Claims, purpose: str) -> None:
        """Keep a record of a QR token issued (its hash, not the token)."""
        await self.conn.execute(
            "INSERT INTO card_qr_tokens (permit_no, card_id, key_id, issued_at, expires_at,"
            " purpose, token_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            claims.permit_no, claims.card_id, claims.key_id, claims.issued_at,
            claims.expires_at, purpose, hashlib.sha256(token.encode()).hexdigest(),
        )

    # physical cards --------------------------------------------------------------------

    async def physical_card(self, permit_no: str) -> PhysicalCard | None:
        """The permit holder's physical card, if issued."""
        row = await self.conn.fetchrow(
            f"SELECT {', '.join(PhysicalCard._fields)} FROM card_physical_cards"
            " WHERE permit_no = $1",
            permit_no,
        )
        return PhysicalCard(*row) if row is not None else None

    async def add_physical_card(self, card: PhysicalCard) -> bool:
        """Store a new physical card; False if the permit or the SSN already has one."""
        added = await self.conn.fetchval(
            f"INSERT INTO card_physical_cards ({', '.join(PhysicalCard._fields)})"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            *card,
        )
        return bool(added)

    async def move_physical_card(self, ssn: str, permit_no: str,
                                 ecard_id: str | None) -> PhysicalCard:
        """Carry the SSN's physical card over to another permit, linked to its e-card (if
        any); the card as it is now. The caller checked that the permit has no card."""
        row = await self.conn.fetchrow(
            "UPDATE card_physical_cards SET permit_no = $2, ecard_id = $3 WHERE ssn = $1"
            f" RETURNING {', '.join(PhysicalCard._fields)}",
            ssn, permit_no, ecard_id,
        )
        if row is None:
            raise LookupError("no physical card carries this SSN")
        return PhysicalCard(*row)

    # notifications ---------------------------------------------------------------------

    async def record_notice(self, notice: Notice) -> bool:
        """Store a notification; False if the same one (permit, dedup key) was sent before."""
        added = await self.conn.fetchval(
            f"INSERT INTO card_notifications ({', '.join(Notice._fields)})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
            *notice,
        )
        return bool(added)

    async def carded_permits_ending(
        self, first: date, last: date
    ) -> list[tuple[CardPermit, ECard]]:
        """Active permits with an e-card whose validity ends between `first` and `last`."""
        p_cols = ", ".join(f"p.{c}" for c in CardPermit._fields)
        e_cols = ", ".join(f"e.{c}" for c in ECard._fields)
        rows = await self.conn.fetch(
            f"SELECT {p_cols}, {e_cols} FROM card_permits p"
            " JOIN card_ecards e ON e.permit_no = p.permit_no"
            " WHERE p.status = 'active' AND p.valid_until BETWEEN $1 AND $2"
            " ORDER BY p.valid_until, p.permit_no",
            first, last,
        )
        n = len(CardPermit._fields)
        return [(CardPermit(*r[:n]), ECard(*r[n:])) for r in rows]


if TYPE_CHECKING:
    from consumers.card.ports import CardViewPort

    # mypy proves here that the Postgres view satisfies the handlers' port.
    _CONFORMS: type[CardViewPort] = CardView
