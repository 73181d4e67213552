"""Public security's own database: its view of permits, its applications, its residence permits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from consumers.public_security.records import CheckedPermit
from consumers.public_security.rules import (
    ApplicationFacts,
    CancellationCase,
    PermitFacts,
    ResidenceFacts,
    names,
)
from hub.db import Connection
from hub.projection import ViewTable
from schemas.public_security import ResidencePermitAppliedData

PERMITS = ViewTable("ps_permits", CheckedPermit._fields)


class PublicSecurityView:
    """Public security's reads and writes of its own database, inside the batch transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._residences: dict[str, ResidenceFacts | None] = {}
        """The latest residence permit of each work permit read ahead (`read_residences`),
        locked like `residence` locks it; an entry goes as soon as this view writes to it."""
        self._read_on: dict[str, str] = {}
        """The work permit of each residence permit in `_residences`."""

    async def read_residences(self, permit_nos: Sequence[str]) -> None:
        """Read (and lock) the latest residence permit of each of these work permits in one
        statement, for `residence` to answer from until this view writes to one of them."""
        todo = sorted({p for p in permit_nos if p not in self._residences})
        if not todo:
            return
        rows = await self.conn.fetch(
            "SELECT permit_no, residence_permit_no, status, valid_from, valid_until"
            " FROM ps_residence_permits r WHERE permit_no = ANY($1::text[])"
            " AND residence_permit_no = (SELECT max(residence_permit_no)"
            " FROM ps_residence_permits l WHERE l.permit_no = r.permit_no)"
            " ORDER BY permit_no FOR UPDATE", todo)
        found = {r["permit_no"]: ResidenceFacts(r["residence_permit_no"], r["status"],
                                                r["valid_from"], r["valid_until"])
                 for r in rows}
        for permit_no in todo:
            facts = found.get(permit_no)
            self._residences[permit_no] = facts
            if facts is not None:
                self._read_on[facts.residence_permit_no] = permit_no

    def _forget(self, *, permit_no: str | None = None,
                residence_permit_no: str | None = None) -> None:
        """Drop what was read ahead of a work permit, or of the one a residence permit is on."""
        if residence_permit_no is not None:
            permit_no = self._read_on.pop(residence_permit_no, None)
        if permit_no is not None:
            facts = self._residences.pop(permit_no, None)
            if facts is not None:
                self._read_on.pop(facts.residence_permit_no, None)

    async def permit(self, permit_no: str) -> PermitFacts | None:
        """The work permit as public security's view holds it."""
        row = await self.conn.fetchrow(
            "SELECT permit_no, status, standard, valid_from, valid_until FROM ps_permits"
            " WHERE permit_no = $1", permit_no)
        return PermitFacts(**dict(row)) if row is not None else None

    async def residence(self, permit_no: str) -> ResidenceFacts | None:
        """The latest residence permit issued on this work permit, locked for this decision.

        Numbers are given in order (`issue`), so the latest is the highest. Read ahead
        (`read_residences`, already locked) when the batch asked for it.
        """
        if permit_no in self._residences:
            return self._residences[permit_no]
        row = await self.conn.fetchrow(
            "SELECT residence_permit_no, status, valid_from, valid_until FROM ps_residence_permits"
            " WHERE permit_no = $1 ORDER BY residence_permit_no DESC LIMIT 1 FOR UPDATE",
            permit_no)
        return ResidenceFacts(**dict(row)) if row is not None else None

    async def decided(self, application_id: str) -> str | None:
        """The outcome already given to this application id, if any."""
        outcome: str | None = await self.conn.fetchval(
            "SELECT coalesce(reason, outcome) FROM ps_applications WHERE application_id = $1"
            " AND reason IS DISTINCT FROM 'duplicate_application'", application_id)
        return outcome

    async def record(
        self,
        event_id: UUID,
        permit_no: str,
        app: ResidencePermitAppliedData,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
        residence_permit_no: str | None = None,
        referral: str | None = None,
    ) -> None:
        """Store an application and its decision."""
        await self.conn.execute(
            "INSERT INTO ps_applications (event_id, application_id, permit_no, purpose,"
            " presented, entry_date, applied_on, requested_until, outcome, reason, message,"
            " residence_permit_no, referral)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            event_id, app.application_id, permit_no, app.purpose.value, app.presented.kind,
            app.entry_date, app.applied_on, app.requested_until, outcome, reason, message,
            residence_permit_no, referral)

    async def accept_token(
        self, digest: bytes, purpose: str, application_id: str, event_id: UUID,
        expires_at: datetime,
    ) -> bool:
        """Record a QR token (its digest) accepted for `purpose`; False if it was before."""
        taken: bool | None = await self.conn.fetchval(
            "INSERT INTO ps_accepted_tokens (token_digest, purpose, application_id, event_id,"
            " expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            digest, purpose, application_id, event_id, expires_at)
        return bool(taken)

    async def issue(
        self, permit_no: str, application_id: str, valid_from: date, valid_until: date
    ) -> str:
        """Store a new residence permit; return the number public security gave it.

        A residence permit of an earlier validity period of the same work permit that is
        still marked issued, but ended before this one starts, is marked expired.
        """
        self._forget(permit_no=permit_no)
        await self.conn.execute(
            "UPDATE ps_residence_permits SET status = 'expired', updated_at = clock_timestamp()"
            " WHERE permit_no = $1 AND status = 'issued' AND valid_until < $2",
            permit_no, valid_from)
        number: int = await self.conn.fetchval("SELECT nextval('ps_residence_permit_no_seq')")
        residence_permit_no = f"RP{number:010d}"
        await self.conn.execute(
            "INSERT INTO ps_residence_permits (residence_permit_no, permit_no, application_id,"
            " valid_from, valid_until, status) VALUES ($1, $2, $3, $4, $5, 'issued')",
            residence_permit_no, permit_no, application_id, valid_from, valid_until)
        return residence_permit_no

    async def extend(self, residence_permit_no: str, valid_until: date) -> None:
        """Move a residence permit's end after an extension was granted."""
        self._forget(residence_permit_no=residence_permit_no)
        await self.conn.execute(
            "UPDATE ps_residence_permits SET valid_until = $2, extension_available_until = NULL,"
            " updated_at = clock_timestamp() WHERE residence_permit_no = $1",
            residence_permit_no, valid_until)

    async def offer_extension(self, residence_permit_no: str, until: date) -> None:
        """Note that the holder may now apply to extend up to `until`."""
        self._forget(residence_permit_no=residence_permit_no)
        await self.conn.execute(
            "UPDATE ps_residence_permits SET extension_available_until = $2,"
            " updated_at = clock_timestamp() WHERE residence_permit_no = $1",
            residence_permit_no, until)

    async def require_cancellation(
        self, residence_permit_no: str, cancel_by: date | None, work_permit_cancelled_on: date
    ) -> None:
        """Mark a residence permit whose work permit was cancelled: a case opens."""
        self._forget(residence_permit_no=residence_permit_no)
        await self.conn.execute(
            "UPDATE ps_residence_permits SET status = 'cancellation_required', cancel_by = $2,"
            " work_permit_cancelled_on = $3, updated_at = clock_timestamp()"
            " WHERE residence_permit_no = $1",
            residence_permit_no, cancel_by, work_permit_cancelled_on)

    async def application(self, application_id: str) -> ApplicationFacts | None:
        """The application with this id as decided first (not a later duplicate)."""
        row = await self.conn.fetchrow(
            "SELECT application_id, permit_no, outcome, purpose, presented, entry_date,"
            " applied_on, requested_until, referral FROM ps_applications"
            " WHERE application_id = $1 AND reason IS DISTINCT FROM 'duplicate_application'"
            " FOR UPDATE", application_id)
        return ApplicationFacts(**dict(row)) if row is not None else None

    async def settle(
        self, application_id: str, outcome: str, *, reason: str | None = None,
        message: str | None = None, residence_permit_no: str | None = None,
    ) -> None:
        """An officer's decision settles a referred application: its final outcome."""
        await self.conn.execute(
            "UPDATE ps_applications SET outcome = $2, reason = $3, message = $4,"
            " residence_permit_no = $5 WHERE application_id = $1 AND outcome = 'referred'",
            application_id, outcome, reason, message, residence_permit_no)

    async def officer_decision(self, kind: str, target: str) -> str | None:
        """The verdict an officer gave on this application or case, if any."""
        verdict: str | None = await self.conn.fetchval(
            "SELECT verdict FROM ps_officer_decisions WHERE kind = $1 AND target = $2",
            kind, target)
        return verdict

    async def record_officer_decision(
        self, event_id: UUID, kind: str, target: str, verdict: str, officer_id: str,
        decided_at: datetime, reason: str,
    ) -> None:
        """Store an officer's decision: who, when, why (one per application or case)."""
        await self.conn.execute(
            "INSERT INTO ps_officer_decisions (event_id, kind, target, verdict, officer_id,"
            " decided_at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            event_id, kind, target, verdict, officer_id, decided_at, reason)

    async def cancellation_case(self, residence_permit_no: str) -> CancellationCase | None:
        """The residence permit with this number, as its cancellation case sees it."""
        row = await self.conn.fetchrow(
            "SELECT residence_permit_no, permit_no, status, valid_from, work_permit_cancelled_on,"
            " cancelled_on FROM ps_residence_permits WHERE residence_permit_no = $1 FOR UPDATE",
            residence_permit_no)
        return CancellationCase(**dict(row)) if row is not None else None

    async def close_cancellation(self, residence_permit_no: str, cancelled_on: date) -> None:
        """Close the case: the residence permit is cancelled on `cancelled_on`."""
        self._forget(residence_permit_no=residence_permit_no)
        await self.conn.execute(
            "UPDATE ps_residence_permits SET status = 'cancelled', cancelled_on = $2,"
            " updated_at = clock_timestamp() WHERE residence_permit_no = $1"
            " AND status = 'cancellation_required'", residence_permit_no, cancelled_on)

    async def names_holder(self, permit_no: str, text: str) -> bool:
        """Whether `text` contains the holder's name or passport number (`rules.names`)."""
        row = await self.conn.fetchrow(
            "SELECT holder_name, passport_no FROM ps_permits WHERE permit_no = $1", permit_no)
        return row is not None and names(text, row["holder_name"], row["passport_no"])

    async def require_change(
        self, residence_permit_no: str, changed: Sequence[str], changed_on: date, report_by: date
    ) -> None:
        """Note particulars the holder must have changed on the residence permit (art. 33);
        particulars still outstanding from an earlier change stay listed."""
        self._forget(residence_permit_no=residence_permit_no)
        await self.conn.execute(
            "UPDATE ps_residence_permits SET changed_particulars = ARRAY(SELECT DISTINCT f FROM"
            " unnest(coalesce(changed_particulars, '{}') || $2::text[]) AS f ORDER BY f),"
            " particulars_changed_on = $3, change_report_by = $4,"
            " updated_at = clock_timestamp() WHERE residence_permit_no = $1",
            residence_permit_no, list(changed), changed_on, report_by)

    async def referred_applications(self) -> list[dict[str, Any]]:
        """The applications waiting for an officer, oldest first (the desk's list)."""
        rows = await self.conn.fetch(
            "SELECT application_id, permit_no, referral, applied_on,"
            " applied_on + 15 AS decide_by FROM ps_applications WHERE outcome = 'referred'"
            " ORDER BY applied_on, application_id")
        return [dict(r) for r in rows]

    async def open_cases(self) -> list[dict[str, Any]]:
        """The residence permits whose cancellation case is open (the desk's list)."""
        rows = await self.conn.fetch(
            "SELECT residence_permit_no, permit_no, work_permit_cancelled_on, cancel_by"
            " FROM ps_residence_permits WHERE status = 'cancellation_required'"
            " ORDER BY cancel_by NULLS LAST, residence_permit_no")
        return [dict(r) for r in rows]


if TYPE_CHECKING:
    from consumers.public_security.ports import PublicSecurityViewPort

    # mypy proves here that the Postgres view satisfies the handlers' port.
    _CONFORMS: type[PublicSecurityViewPort] = PublicSecurityView
