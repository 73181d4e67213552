"""Batch upserts of event-carried state into a view table, guarded by `sequence`.

The known fast path: reduce the batch to the newest row per key, COPY it into a staging
table, and merge with one `INSERT … ON CONFLICT` whose `WHERE` drops stale and duplicate
versions. One round trip per batch instead of a statement per event, plus one read of the
versions held, for the jump limit (`MAX_SEQUENCE_JUMP`).

A key the agency erased (`hub_erasures`, `hub.retention`) has no row left to guard it, so
the merge also drops a row whose sequence is not above the one erased: the compacted topic
and a redriven dead letter still carry the erased version, and must not bring it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.db import Connection
from hub.errors import MessageRefused

MAX_SEQUENCE_JUMP = 10
"""How far above the version a view holds of a key an event's sequence may go (domain §3).

A key's versions come +1 per event, and a view reads every event of its subjects, so a gap
means events this view refused (dead letters): a gap of more than ten is an incident to look
into, not a stream to follow. A forged or broken sequence can then hide at most ten true
versions behind it, instead of every later one. The first version a view holds of a key has
no such bound (retention, `hub replay --from`), nor can it: the view knows nothing before it.
"""


class SequenceJump(MessageRefused):
    """An event whose sequence is more than MAX_SEQUENCE_JUMP above the version held."""

    reason = "sequence_jump"


def sequence_jumps(
    rows: Sequence[tuple[Any, ...]], held: Mapping[Any, int], seq: int
) -> list[int]:
    """The indexes of the rows that jump: beyond the newest version known of their key.

    Known: the version held, raised by every earlier row of the batch that did not jump.
    """
    known = dict(held)
    jumped = []
    for i, row in enumerate(rows):
        top = known.get(row[0])
        if top is not None and row[seq] > top + MAX_SEQUENCE_JUMP:
            jumped.append(i)
        else:
            known[row[0]] = row[seq] if top is None else max(top, row[seq])
    return jumped


@dataclass(frozen=True)
class ViewTable:
    """A view table keyed by its first column, with a `sequence` column as the guard."""

    name: str
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if "sequence" not in self.columns:
            raise ValueError(f"view table {self.name} needs a sequence column")

    @property
    def key(self) -> str:
        """The primary-key column."""
        return self.columns[0]

    async def upsert_latest(
        self, conn: Connection, rows: Sequence[tuple[Any, ...]], *, skip_jumps: bool = False
    ) -> int:
        """Merge rows into the table; a row not newer than the stored one changes nothing.

        A row that jumps (`sequence_jumps`) raises SequenceJump, so the consumer dead-letters
        its event; with `skip_jumps` (a replay) it is left out. Returns how many were left out.
        """
        if not rows:
            return 0
        seq = self.columns.index("sequence")
        jumped = sequence_jumps(rows, await self._held(conn, rows), seq)
        if jumped and not skip_jumps:
            raise SequenceJump(f"{self.name}: sequence {rows[jumped[0]][seq]} is more than"
                               f" {MAX_SEQUENCE_JUMP} above the version held of its key")
        if jumped:
            left_out = set(jumped)
            rows = [r for i, r in enumerate(rows) if i not in left_out]
        await self._merge(conn, rows, seq)
        return len(jumped)

    async def _held(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> dict[Any, int]:
        """The sequence the table holds of each key among `rows`."""
        found = await conn.fetch(
            f"SELECT {self.key}, sequence FROM {self.name} WHERE {self.key} = ANY($1)",
            list({r[0] for r in rows}))
        return {r[0]: r[1] for r in found}

    async def _merge(self, conn: Connection, rows: Sequence[tuple[Any, ...]], seq: int) -> None:
        if not rows:
            return
        newest: dict[Any, tuple[Any, ...]] = {}
        for row in rows:
            held = newest.get(row[0])
            if held is None or row[seq] > held[seq]:
                newest[row[0]] = row
        staging = f"_staging_{self.name}"
        cols = ", ".join(self.columns)
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging}"
            f" (LIKE {self.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(staging, records=newest.values(), columns=self.columns)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns[1:])
        # One round trip (the simple query protocol runs both). The staging rows go with
        # DELETE, not TRUNCATE: a temp table's TRUNCATE gives it a new file and a catalog
        # update every time, and ON COMMIT DELETE ROWS empties it at commit anyway; emptying
        # it here is for a second merge of this table in the same transaction.
        await conn.execute(
            f"INSERT INTO {self.name} AS v ({cols}, applied_at)"
            f" SELECT {cols}, clock_timestamp() FROM {staging} s"
            f" WHERE NOT EXISTS (SELECT 1 FROM hub_erasures e"
            f"  WHERE e.subject = s.{self.key}::text AND e.sequence >= s.sequence)"
            f" ON CONFLICT ({self.key}) DO UPDATE SET {updates}, applied_at = EXCLUDED.applied_at"
            f" WHERE v.sequence < EXCLUDED.sequence;"
            f" DELETE FROM {staging}"
        )


async def fetch_one(
    conn: Connection | asyncpg.Pool, table: ViewTable, key: Any
) -> dict[str, Any] | None:
    """One row of a view as a dict, or None."""
    row = await conn.fetchrow(f"SELECT * FROM {table.name} WHERE {table.key} = $1", key)
    return dict(row) if row is not None else None


async def fetch_all(conn: Connection | asyncpg.Pool, table: ViewTable) -> dict[Any, dict[str, Any]]:
    """Every row of a view, by key."""
    rows = await conn.fetch(f"SELECT * FROM {table.name}")
    return {r[table.key]: dict(r) for r in rows}
