"""Every look at personal data, recorded in the database of the agency whose data it is.

An operator command that shows a person's data (`hub views show`, `hub dlq show`,
`hub evidence show|export`, `hub reconcile`, `hub audit`, and an agency's own commands that
do, such as the e-card service's permit document) says why (`--purpose`, a case or ticket
reference, as X-Road's `issue` field) and records who looked, why, at what and whether the
personal values were shown in clear, in the append-only
`hub_looks` table (migration 0008) of each agency whose data it read, before it prints
anything: a look it could not record is a look it does not show. `hub audit PERMIT_NO`
reads the rows back as the person's data tracker (as Estonia's Data Tracker shows a citizen
who looked at their data).

Guarantees, and why:

- In the agency's own database: the agency that holds the data answers for who saw it,
  and no agency learns from the record who looked at another's data.
- Recorded first, in one transaction per agency: a failure leaves nothing shown.
- Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, and the runtime role the
  commands connect as holds neither right (`hub.roles.seal_migration_record`).
- What, never the values: a look names the fields it showed, so the record of looks holds
  no personal value besides the permit number it is about.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.db import Connection
from hub.errors import BadTarget, NotReady

__all__ = ["MIN_PURPOSE", "Look", "Seen", "check_purpose", "looks_at", "record"]

MIN_PURPOSE = 4
"""Characters a purpose needs at least: "case" alone is not a reference, "T-42" is."""


def check_purpose(purpose: str) -> str:
    """The purpose, stripped, or BadTarget when it cannot say why anyone looks."""
    text = purpose.strip()
    if len(text) < MIN_PURPOSE:
        raise BadTarget("--purpose must say why you look (a case or ticket reference);"
                        " nothing was shown")
    return text


@dataclass(frozen=True)
class Look:
    """One command's look: who, why, with which command, revealing personal values or not.

    `run_id` is shared by the rows the look records in each agency's database.
    """

    command: str
    purpose: str
    revealed: bool
    operator: str | None = None
    looked_by: str = field(default_factory=getpass.getuser)
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        object.__setattr__(self, "purpose", check_purpose(self.purpose))
        if self.operator is not None and not self.operator.strip():
            object.__setattr__(self, "operator", None)


@dataclass(frozen=True)
class Seen:
    """What one look showed of one agency's data: the subject (a permit number, or the
    dead letter's `topic:partition:offset`), the permit it is about if known, and the
    fields shown (names such as `holder.name`, never values)."""

    subject: str
    permit_no: str | None
    fields: Sequence[str] = ()


_INSERT = """
INSERT INTO hub_looks (run_id, looked_by, operator, command, subject, permit_no, purpose,
                       revealed, fields)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


async def record(conn: Connection, look: Look, seen: Sequence[Seen]) -> None:
    """Record what `look` showed of this connection's agency, all rows or none; NotReady
    (exit 1, nothing shown) when the database refuses."""
    try:
        async with conn.transaction():
            await conn.executemany(_INSERT, [
                (look.run_id, look.looked_by, look.operator, look.command, s.subject,
                 s.permit_no, look.purpose, look.revealed, list(s.fields)) for s in seen])
    except asyncpg.PostgresError as error:
        # The server's text names the table and the right, never a value of the look.
        raise NotReady(f"could not record the look in {await _database(conn)} ({error});"
                       " nothing was shown") from None


async def _database(conn: Connection) -> str:
    try:
        return str(await conn.fetchval("SELECT current_database()"))
    except asyncpg.PostgresError:
        return "the agency's database"


async def looks_at(conn: Connection, permit_no: str) -> list[dict[str, Any]]:
    """Every look this agency recorded at one permit's data, oldest first."""
    rows = await conn.fetch(
        "SELECT looked_at, looked_by, operator, command, subject, purpose, revealed, fields,"
        " run_id FROM hub_looks WHERE permit_no = $1 ORDER BY looked_at, id", permit_no)
    return [dict(r) for r in rows]
