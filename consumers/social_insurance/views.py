"""The social insurance agency's own database: its view of permits, accounts, registrations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

from consumers.social_insurance.ports import AmbiguousPerson
from consumers.social_insurance.records import InsuredPermit, Referral, Review
from consumers.social_insurance.rules import IN_FORCE, Cover, PermitFacts
from hub.db import Connection
from hub.projection import ViewTable
from schemas.social_insurance import (
    InsuranceRegistrationRequestedData,
    InsuranceReviewDecidedData,
)

PERMITS = ViewTable("si_permits", InsuredPermit._fields)


class SocialInsuranceView:
    """The agency's reads and writes of its own database, inside the batch transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._letters: dict[str, str] = {}
        """Letters remembered but not written yet (`flush`), the first per number kept."""
        self._cards: dict[str, str] = {}
        """E-cards remembered but not written yet (`flush`), the first per id kept."""
        self._in_force: dict[str, str | None] = {}
        """The SSN of each permit's registration in force, read ahead (`read_in_force`);
        an entry goes as soon as this view writes a registration of its permit."""

    async def flush(self) -> None:
        """Write the letters and e-cards remembered so far, in one statement each: before
        anything reads them, and at the end of the batch."""
        if self._letters:
            letters, self._letters = self._letters, {}
            await self.conn.execute(
                "INSERT INTO si_letters (letter_no, permit_no)"
                " SELECT * FROM unnest($1::text[], $2::text[])"
                " ON CONFLICT (letter_no) DO NOTHING", list(letters), list(letters.values()))
        if self._cards:
            cards, self._cards = self._cards, {}
            await self.conn.execute(
                "INSERT INTO si_ecards (card_id, permit_no)"
                " SELECT * FROM unnest($1::text[], $2::text[])"
                " ON CONFLICT (card_id) DO NOTHING", list(cards), list(cards.values()))

    async def read_in_force(self, permit_nos: Sequence[str]) -> None:
        """Read the registration in force of each of these permits in one statement, for
        `registration_in_force` and `suspend` to answer from until this view writes one."""
        todo = sorted({p for p in permit_nos if p not in self._in_force})
        if not todo:
            return
        rows = await self.conn.fetch(
            "SELECT permit_no, ssn FROM si_registrations WHERE permit_no = ANY($1::text[])"
            " AND status = 'active'", todo)
        found = {r["permit_no"]: r["ssn"] for r in rows}
        for permit_no in todo:
            self._in_force[permit_no] = found.get(permit_no)

    # the permits and how requests name them ----------------------------------------------

    async def permit(self, permit_no: str) -> PermitFacts | None:
        """The permit as the agency's view holds it."""
        row = await self.conn.fetchrow(
            "SELECT permit_no, status, standard, nationality, employer_credit_code, issued_on,"
            " valid_from, valid_until FROM si_permits WHERE permit_no = $1", permit_no)
        return PermitFacts(**dict(row)) if row is not None else None

    async def holder_key(self, permit_no: str) -> str | None:
        """The passport person key of the permit's holder, if known."""
        found: str | None = await self.conn.fetchval(
            "SELECT holder_key FROM si_permits WHERE permit_no = $1", permit_no)
        return found

    async def permits_in_force_of(self, keys: Sequence[str]) -> list[PermitFacts]:
        """The permits not yet ended whose holder is the person these keys name: by the keys
        themselves, or by any key of the account one of them names."""
        rows = await self.conn.fetch(
            "SELECT permit_no, status, standard, nationality, employer_credit_code, issued_on,"
            " valid_from, valid_until FROM si_permits WHERE status = ANY($2::text[])"
            " AND holder_key IN (SELECT unnest($1::text[]) UNION SELECT k.person_key"
            " FROM si_person_keys k JOIN si_person_keys m ON m.ssn = k.ssn"
            " WHERE m.person_key = ANY($1::text[])) ORDER BY permit_no",
            list(keys), list(IN_FORCE))
        return [PermitFacts(**dict(r)) for r in rows]

    async def permit_of_letter(self, letter_no: str) -> str | None:
        """The permit a notification letter was issued for."""
        await self.flush()
        found: str | None = await self.conn.fetchval(
            "SELECT permit_no FROM si_letters WHERE letter_no = $1", letter_no)
        return found

    async def permit_of_card(self, card_id: str) -> str | None:
        """The permit an e-card shows."""
        await self.flush()
        found: str | None = await self.conn.fetchval(
            "SELECT permit_no FROM si_ecards WHERE card_id = $1", card_id)
        return found

    async def remember_letter(self, letter_no: str, permit_no: str) -> None:
        """Record which permit a notification letter names (the first one stays): written
        with the batch's other letters (`flush`)."""
        self._letters.setdefault(letter_no, permit_no)

    async def remember_card(self, card_id: str, permit_no: str) -> None:
        """Record which permit an e-card shows (the first one stays): written with the
        batch's other e-cards (`flush`)."""
        self._cards.setdefault(card_id, permit_no)

    # requests and registrations -------------------------------------------------------

    async def decided(self, request_id: str) -> str | None:
        """The outcome already given to this request id, if any."""
        found: str | None = await self.conn.fetchval(
            "SELECT outcome FROM si_requests WHERE request_id = $1"
            " AND reason IS DISTINCT FROM 'duplicate_request'", request_id)
        return found

    async def registration_in_force(self, permit_no: str) -> str | None:
        """The SSN of the permit's registration in force, if any."""
        if permit_no in self._in_force:
            return self._in_force[permit_no]
        found: str | None = await self.conn.fetchval(
            "SELECT ssn FROM si_registrations WHERE permit_no = $1 AND status = 'active'",
            permit_no)
        return found

    async def review_pending(self, permit_no: str) -> bool:
        """True when a request for this permit waits in manual review."""
        return bool(await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM si_requests q WHERE q.permit_no = $1"
            " AND q.outcome = 'referred' AND NOT EXISTS (SELECT 1 FROM si_reviews r"
            " WHERE r.request_id = q.request_id))", permit_no))

    async def referral(self, request_id: str) -> Referral | None:
        """The request with this id, if it was referred to manual review."""
        row = await self.conn.fetchrow(
            "SELECT q.request_id, q.requester, q.reference_kind, q.reference, q.permit_no,"
            " q.requested_on, q.certificate,"
            " coalesce(q.employer_credit_code, p.employer_credit_code) AS employer"
            " FROM si_requests q LEFT JOIN si_permits p ON p.permit_no = q.permit_no"
            " WHERE q.request_id = $1 AND q.outcome = 'referred'", request_id)
        if row is None:
            return None
        return Referral(_request_of(row), row["permit_no"])

    async def review_of(self, request_id: str) -> Review | None:
        """The reviewer's decision applied to this request id, if any."""
        row = await self.conn.fetchrow(
            "SELECT event_id, decision, exempt, outcome FROM si_reviews WHERE request_id = $1",
            request_id)
        if row is None:
            return None
        return Review(row["event_id"], row["decision"], tuple(row["exempt"]), row["outcome"])

    async def record_review(
        self, event_id: UUID, decision: InsuranceReviewDecidedData, *, outcome: str
    ) -> None:
        """Store a reviewer's decision and its outcome (one per request id)."""
        await self.conn.execute(
            "INSERT INTO si_reviews (request_id, event_id, permit_no, decision, exempt,"
            " officer_id, decided_at, reason, outcome)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            decision.request_id, event_id, decision.permit_no, decision.decision.value,
            [i.value for i in decision.exempt], decision.officer_id, decision.decided_at,
            decision.reason, outcome)

    async def pending_reviews(self) -> list[dict[str, Any]]:
        """The requests waiting in manual review, oldest first: what a reviewer needs to
        decide (the permit, the holder's nationality, the certificate, the referral)."""
        rows = await self.conn.fetch(
            "SELECT q.request_id, q.permit_no, q.requester, q.reference_kind,"
            " q.requested_on, q.certificate, q.reason AS referral, q.message,"
            " q.decided_at AS referred_at, p.nationality, p.status AS permit_status"
            " FROM si_requests q LEFT JOIN si_permits p ON p.permit_no = q.permit_no"
            " WHERE q.outcome = 'referred' AND NOT EXISTS (SELECT 1 FROM si_reviews r"
            " WHERE r.request_id = q.request_id) ORDER BY q.decided_at, q.request_id")
        return [dict(r) for r in rows]

    async def record(
        self,
        event_id: UUID,
        request: InsuranceRegistrationRequestedData,
        reference: str,
        permit_no: str | None,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Store a request and its decision."""
        await self.conn.execute(
            "INSERT INTO si_requests (event_id, request_id, requester, reference_kind,"
            " reference, permit_no, requested_on, certificate, outcome, reason, message,"
            " employer_credit_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            event_id, request.request_id, request.requester.value, request.reference.kind,
            reference, permit_no, request.requested_on, request.certificate_of_coverage,
            outcome, reason, message, request.employer_credit_code)

    async def register(
        self,
        request: InsuranceRegistrationRequestedData,
        permit_no: str,
        ssn: str,
        cover: Cover,
        *,
        deadline: date,
        late: bool,
    ) -> None:
        """Store a registration in force, and make its account active on this permit."""
        self._in_force.pop(permit_no, None)
        await self.conn.execute(
            "INSERT INTO si_registrations (request_id, permit_no, ssn, requester,"
            " employer_credit_code, insured, exempt, agreement, registered_on, deadline, late,"
            " status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active')",
            request.request_id, permit_no, ssn, request.requester.value,
            request.employer_credit_code, [i.value for i in cover.insured],
            [i.value for i in cover.exempt], cover.agreement, request.requested_on, deadline,
            late)
        await self.conn.execute(
            "UPDATE si_accounts SET status = 'active', current_permit_no = $2,"
            " updated_at = clock_timestamp() WHERE ssn = $1", ssn, permit_no)

    async def suspend(self, permit_no: str, on: date, cause: str) -> str | None:
        """Suspend the permit's registration in force; return its SSN, or None if none."""
        if permit_no in self._in_force and self._in_force[permit_no] is None:
            return None  # read ahead: none in force
        self._in_force.pop(permit_no, None)
        ssn: str | None = await self.conn.fetchval(
            "UPDATE si_registrations SET status = 'suspended', suspended_on = $2,"
            " suspension_cause = $3 WHERE permit_no = $1 AND status = 'active' RETURNING ssn",
            permit_no, on, cause)
        if ssn is not None:
            await self.conn.execute(
                "UPDATE si_accounts SET status = 'suspended', updated_at = clock_timestamp()"
                " WHERE ssn = $1 AND NOT EXISTS (SELECT 1 FROM si_registrations"
                " WHERE ssn = $1 AND status = 'active')", ssn)
        return ssn

    # accounts and the person's keys ---------------------------------------------------

    async def account_for(
        self, keys: Sequence[str], permit_no: str, today: date, new_ssn: Callable[[], str]
    ) -> tuple[str, bool]:
        """The person's SSN, opening an account if none of `keys` is known; True if new.

        A transaction lock per key serialises two registrations of one person that arrive
        on different partitions, so the second sees the first's account.
        """
        for key in sorted(keys):
            await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
        rows = await self.conn.fetch(
            "SELECT DISTINCT ssn FROM si_person_keys WHERE person_key = ANY($1::text[])",
            list(keys))
        if len(rows) > 1:
            raise AmbiguousPerson(f"the holder of permit {permit_no} matches {len(rows)} accounts")
        created = not rows
        ssn = rows[0]["ssn"] if rows else await self._open_account(permit_no, today, new_ssn)
        await self.add_keys(ssn, keys)
        return ssn, created

    async def add_keys(self, ssn: str, keys: Sequence[str]) -> None:
        """Let these keys name the account too."""
        await self.conn.executemany(
            "INSERT INTO si_person_keys (person_key, ssn) VALUES ($1, $2)"
            " ON CONFLICT (person_key) DO NOTHING", [(k, ssn) for k in keys])

    async def _open_account(self, permit_no: str, today: date, new_ssn: Callable[[], str]) -> str:
        while True:
            ssn = new_ssn()
            opened = await self.conn.fetchval(
                "INSERT INTO si_accounts (ssn, status, opened_on, current_permit_no)"
                " VALUES ($1, 'active', $2, $3) ON CONFLICT (ssn) DO NOTHING RETURNING true",
                ssn, today, permit_no)
            if opened:
                return ssn


def _request_of(row: Any) -> InsuranceRegistrationRequestedData:
    """A stored request as it was asked (the reference by its kind)."""
    key = {"permit_no": "permit_no", "letter_no": "letter_no", "ecard": "card_id"}
    return InsuranceRegistrationRequestedData.model_validate({
        "request_id": row["request_id"], "requester": row["requester"],
        "reference": {"kind": row["reference_kind"], key[row["reference_kind"]]: row["reference"]},
        "employer_credit_code": row["employer"], "requested_on": row["requested_on"],
        "certificate_of_coverage": row["certificate"]})


if TYPE_CHECKING:
    from consumers.social_insurance.ports import SocialInsuranceViewPort

    # mypy proves here that the Postgres view satisfies the handlers' port.
    _CONFORMS: type[SocialInsuranceViewPort] = SocialInsuranceView
