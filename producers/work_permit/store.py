"""The work-permit authority's own database: permits and the transactional outbox.

Every command reads the permit, decides with `domain`, and writes the new record and its
event in one statement (one transaction), so the permits table and the published stream
never disagree. The write is conditional on the sequence the decision was made at: a command
that another one overtook reads again and decides again, and after `OPTIMISTIC_TRIES` such
rounds it takes the row lock (`SELECT … FOR UPDATE`) as every command once did. A command is
thus two round trips (read, write) instead of a transaction's six or more, and its commit
holds no lock but its row's; the relay is woken after the commit (`hub.outbox.RelayWaker`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg

from hub import tracing
from hub.db import Connection
from hub.outbox import OUTBOX_COLUMNS, OutgoingMessage, RelayWaker, outbox_row
from producers.work_permit import domain
from schemas import topics
from schemas.envelope import CloudEvent
from schemas.permits import (
    CancellationReason,
    Category,
    Employer,
    FamilyMember,
    Holder,
    LegacyPermitRegistered,
    NotificationLetterIssued,
    NotificationLetterLapsed,
    PermitCancelled,
    PermitChanged,
    PermitExpired,
    PermitExtended,
    PermitIssued,
    PermitMigrated,
    PermitPayload,
    PermitRecord,
    PermitStatus,
)

EVENT_OF: dict[type[PermitPayload], type[CloudEvent[Any]]] = {
    domain.NotificationLetterIssuedData: NotificationLetterIssued,
    domain.NotificationLetterLapsedData: NotificationLetterLapsed,
    domain.PermitIssuedData: PermitIssued,
    domain.PermitExtendedData: PermitExtended,
    domain.PermitChangedData: PermitChanged,
    domain.PermitCancelledData: PermitCancelled,
    domain.PermitExpiredData: PermitExpired,
    domain.LegacyPermitRegisteredData: LegacyPermitRegistered,
    domain.PermitMigratedData: PermitMigrated,
}


OPTIMISTIC_TRIES = 3
"""Reads and conditional writes a command tries before it takes the permit's row lock."""

_INSERT = (
    "WITH written AS (INSERT INTO permits (permit_no, sequence, status, record)"
    " VALUES ($1, $2, $3, $4) RETURNING permit_no)"
    f" INSERT INTO {OUTBOX_COLUMNS} SELECT $5, $6, $7, $8::jsonb FROM written RETURNING id")
"""A new permit and its event's outbox row, in one statement."""

_UPDATE = (
    "WITH written AS (UPDATE permits SET sequence = $2, status = $3, record = $4,"
    " updated_at = now() WHERE permit_no = $1 AND sequence = $2 - 1 RETURNING permit_no)"
    f" INSERT INTO {OUTBOX_COLUMNS} SELECT $5, $6, $7, $8::jsonb FROM written RETURNING id")
"""A permit's next version and its event's outbox row, in one statement; nothing written
unless the permit is still at the sequence before (the one the decision was made on)."""

_READ = "SELECT record, sequence FROM permits WHERE permit_no = $1"


class UnknownPermit(LookupError):
    """No permit with this number exists at the authority."""


class Authority:
    """Commands of the work-permit authority, each one transaction with its event."""

    def __init__(self, pool: asyncpg.Pool, *, topic: str = topics.PERMIT_EVENTS) -> None:
        self.pool = pool
        self.topic = topic
        self.waker = RelayWaker(pool)
        """Wakes the outbox relay after each command's commit."""

    async def apply(
        self,
        *,
        holder: Holder,
        employer: Employer,
        category: Category,
        position: str,
        approved_months: int,
        family: tuple[FamilyMember, ...] = (),
        today: date,
        previous_permit_no: str | None = None,
    ) -> PermitRecord:
        """Approve an overseas application: a new permit number and its notification letter.

        An application by a former holder names their earlier permit (`previous_permit_no`,
        as the application form asks for it): the person keeps that number for life, and
        the new period is the same permit's next events (`domain.reapply`); its letter is
        numbered `NL<permit no>-<sequence>`, so each period's letter has its own number.
        """
        if previous_permit_no is not None:
            def decide(record: PermitRecord, sequence: int) -> PermitPayload:
                return domain.reapply(
                    record, letter_no=f"NL{record.permit_no}-{sequence}", holder=holder,
                    employer=employer, category=category, position=position,
                    approved_months=approved_months, family=family, today=today)

            return await self._command_at(previous_permit_no, decide)
        async with self.pool.acquire() as conn:
            number = await conn.fetchval("SELECT nextval('permit_no_seq')")
            permit_no = f"{number:018d}"
            data = domain.notification_letter(
                permit_no=permit_no,
                letter_no=f"NL{permit_no}",
                holder=holder,
                employer=employer,
                category=category,
                position=position,
                approved_months=approved_months,
                family=family,
                today=today,
            )
            await self._write(conn, data, sequence=1, insert=True)
        self.waker.wake()
        return data.permit

    async def register_legacy(self, record: PermitRecord) -> PermitRecord:
        """Register a pre-integration physical permit under its existing number."""
        data = domain.legacy(record)
        async with self.pool.acquire() as conn:
            await self._write(conn, data, sequence=1, insert=True)
        self.waker.wake()
        return data.permit

    async def issue(self, permit_no: str, *, valid_from: date, today: date) -> PermitRecord:
        """Activate a permit after entry."""
        return await self._command(
            permit_no, lambda r: domain.issue(r, valid_from=valid_from, today=today)
        )

    async def extend(self, permit_no: str, *, new_valid_until: date, today: date) -> PermitRecord:
        """Extend an active permit."""
        return await self._command(
            permit_no, lambda r: domain.extend(r, new_valid_until=new_valid_until, today=today)
        )

    async def change(self, permit_no: str, **fields: Any) -> PermitRecord:
        """Change name, passport, position or category."""
        return await self._command(permit_no, lambda r: domain.change(r, **fields))

    async def cancel(
        self, permit_no: str, *, reason: CancellationReason, today: date
    ) -> PermitRecord:
        """Cancel a permit."""
        return await self._command(
            permit_no, lambda r: domain.cancel(r, reason=reason, today=today)
        )

    async def expire(self, permit_no: str, *, today: date) -> PermitRecord:
        """Mark a permit expired."""
        return await self._command(permit_no, lambda r: domain.expire(r, today=today))

    async def expire_ended(self, today: date) -> list[str]:
        """Expire every active permit whose last day is before `today`: the numbers expired.

        Each permit is its own command and transaction, so a crash half-way leaves the rest
        for the next run, and a second run on the same day finds nothing left. A permit
        extended or cancelled after the search is refused by the rule (`domain.expire`),
        decided on the record its write is conditional on, and skipped."""
        expired = []
        for permit_no in await self.ended(today):
            try:
                await self.expire(permit_no, today=today)
            except domain.PermitRuleViolation:
                continue
            expired.append(permit_no)
        return expired

    async def ended(self, today: date) -> list[str]:
        """The active permits whose last day is before `today`, by number."""
        rows = await self.pool.fetch(
            "SELECT permit_no FROM permits WHERE status = $1"
            " AND (record->>'valid_until')::date < $2 ORDER BY permit_no",
            PermitStatus.ACTIVE.value, today)
        return [r["permit_no"] for r in rows]

    async def lapse(self, permit_no: str, *, today: date) -> PermitRecord:
        """Lapse a permit's notification letter that ran out before the permit was issued."""
        return await self._command(permit_no, lambda r: domain.lapse(r, today=today))

    async def lapse_ended(self, today: date) -> list[str]:
        """Lapse every letter whose validity ended before `today` without the permit being
        issued: the numbers lapsed. One command per permit, as `expire_ended`, so a second
        run on the same day finds nothing left, and a permit issued after the search is
        refused by the rule (`domain.lapse`) and skipped."""
        lapsed = []
        for permit_no in await self.letters_ended(today):
            try:
                await self.lapse(permit_no, today=today)
            except domain.PermitRuleViolation:
                continue
            lapsed.append(permit_no)
        return lapsed

    async def letters_ended(self, today: date) -> list[str]:
        """The permits still at the letter stage whose letter's last valid day is before
        `today` (`domain.letter_valid_until`: the day before the issue date plus
        `LETTER_VALIDITY_MONTHS`; Postgres adds months as `add_months` does, the month's
        last day when the day does not exist), by number."""
        rows = await self.pool.fetch(
            "SELECT permit_no FROM permits WHERE status = $1"
            " AND ((record->>'letter_issued_on')::date + make_interval(months => $3))::date"
            " <= $2 ORDER BY permit_no",
            PermitStatus.LETTER_ISSUED.value, today, domain.LETTER_VALIDITY_MONTHS)
        return [r["permit_no"] for r in rows]

    async def migrate(self, permit_no: str) -> PermitRecord:
        """Move a legacy permit onto the integrated standard."""
        return await self._command(permit_no, domain.migrate)

    async def get(self, permit_no: str) -> tuple[PermitRecord, int] | None:
        """The authority's record of one permit and its sequence, if it exists."""
        row = await self.pool.fetchrow(
            "SELECT record, sequence FROM permits WHERE permit_no = $1", permit_no
        )
        if row is None:
            return None
        return PermitRecord.model_validate_json(row["record"]), row["sequence"]

    async def all(self) -> dict[str, tuple[PermitRecord, int]]:
        """Every permit the authority holds, by number, with its sequence."""
        rows = await self.pool.fetch("SELECT permit_no, record, sequence FROM permits")
        return {
            r["permit_no"]: (PermitRecord.model_validate_json(r["record"]), r["sequence"])
            for r in rows
        }

    async def _command(
        self, permit_no: str, decide: Callable[[PermitRecord], PermitPayload]
    ) -> PermitRecord:
        return await self._command_at(permit_no, lambda record, _: decide(record))

    async def _command_at(
        self, permit_no: str, decide: Callable[[PermitRecord, int], PermitPayload]
    ) -> PermitRecord:
        """Decide on the permit's record and the sequence its event will carry, and write
        both if no other command wrote the permit meanwhile (module docstring)."""
        async with self.pool.acquire() as conn:
            for _ in range(OPTIMISTIC_TRIES):
                data, sequence = _decide(permit_no, await conn.fetchrow(_READ, permit_no), decide)
                if await self._write(conn, data, sequence=sequence, insert=False):
                    break
            else:
                async with conn.transaction():
                    row = await conn.fetchrow(f"{_READ} FOR UPDATE", permit_no)
                    data, sequence = _decide(permit_no, row, decide)
                    written = await self._write(conn, data, sequence=sequence, insert=False)
                    assert written, "the row is locked"
        self.waker.wake()
        return data.permit

    async def _write(
        self, conn: Connection, data: PermitPayload, *, sequence: int, insert: bool
    ) -> bool:
        """Write the permit's new version and its event's outbox row in one statement: True
        if written, False if the permit is no longer at `sequence - 1` (an update only)."""
        record = data.permit
        event_type = EVENT_OF[type(data)]
        # The decision starts a trace (or joins the caller's): every agency's work on the
        # event, and each outcome of that work, carries it (hub.tracing).
        with tracing.span(f"decide {event_type.EVENT_TYPE}", kind=tracing.SpanKind.PRODUCER,
                          attributes={"cloudevents.event_type": event_type.EVENT_TYPE}) as trace:
            event = event_type.create(subject=record.permit_no, sequence=sequence, data=data,
                                      **trace.as_event_fields())
        row = outbox_row(OutgoingMessage.of_event(self.topic, event))
        written = await conn.fetchval(
            _INSERT if insert else _UPDATE,
            record.permit_no, sequence, record.status.value, record.model_dump_json(), *row)
        return written is not None


def _decide(
    permit_no: str, row: asyncpg.Record | None,
    decide: Callable[[PermitRecord, int], PermitPayload],
) -> tuple[PermitPayload, int]:
    """The decision on the permit's record as read, and the sequence its event carries."""
    if row is None:
        raise UnknownPermit(f"no permit {permit_no}")
    sequence: int = row["sequence"] + 1
    return decide(PermitRecord.model_validate_json(row["record"]), sequence), sequence
