"""Batch upserts of event-carried state into a view table, guarded by `sequence`.

The known fast path: reduce the batch to the newest row per key, COPY it into a staging
table, and merge with one `INSERT … ON CONFLICT` whose `WHERE` drops stale and duplicate
versions. One round trip per batch instead of a statement per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.db import Connection


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

    async def upsert_latest(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Merge rows into the table; a row not newer than the stored one changes nothing."""
        if not rows:
            return
        seq = self.columns.index("sequence")
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
        await conn.execute(
            f"INSERT INTO {self.name} AS v ({cols}, applied_at)"
            f" SELECT {cols}, clock_timestamp() FROM {staging}"
            f" ON CONFLICT ({self.key}) DO UPDATE SET {updates}, applied_at = EXCLUDED.applied_at"
            f" WHERE v.sequence < EXCLUDED.sequence"
        )
        await conn.execute(f"TRUNCATE {staging}")


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
