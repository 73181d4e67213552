"""`hub retention apply`: carry out the retention policy (`hub.retention`) in each agency's
database; `hub retention policy`: the policy as it holds under the settings.

How a run goes, per agency, in ONE transaction on its database as its owner role (the role
that owns the replaced tables, and the only one the evidence log lets erase a value):

1. take the retention lock, and the agency's consumer offset rows `FOR UPDATE`: the live
   consumer locks them at the start of every batch, so no batch commits while permits are
   erased, and every later batch sees their tombstones (a batch that had already read "no
   tombstone" and then recreated a row just deleted is what this prevents);
2. drop the view tables `hub replay` replaced, once their replay switched more than
   `replaced_tables` days ago;
3. delete the expiring rows (QR tokens) whose time passed more than `qr_tokens` days ago;
4. erase the permits of the view that ended (cancelled, expired) more than `ended_permits`
   days ago: the rows of the agency's other tables about them are deleted or anonymised as
   it declared (`Forget`), the view rows deleted, a tombstone per permit written to
   `hub_erasures` with the erased sequence;
5. erase the evidence log's values recorded more than `evidence_values` days ago (value
   NULL, `value_erased_at` set; digest, chain and every other column stay);
6. record the run in `hub_retention_runs` (append-only): when, as of when, who, why, the
   periods, the count per table and action.

A dry run (the default) records the run and changes nothing else: it performs steps 3 and
4 in a subtransaction it rolls back, so its counts are exactly what `--execute` would do
then (a token row deleted in step 3 is not counted again in step 4), and counts steps 2
and 5, which overlap with nothing, instead of doing them. No personal value is printed,
only tables and counts.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.agency import Agency
from hub.db import Connection
from hub.errors import BadTarget
from hub.registry import installed
from hub.retention import ENDED_STATUSES, Kind, Period, Retention, ended_due, periods
from hub.settings import Settings

LOCK = "SELECT pg_advisory_xact_lock(hashtext('hub retention'))"


@dataclass(frozen=True)
class Count:
    """What one rule did, or would do, to one table."""

    table: str
    action: str
    """`drop`, `delete`, `anonymise` or `erase values`."""
    rule: Kind
    rows: int
    detail: str = ""


@dataclass
class AgencyRun:
    """One agency's run: its periods, as of when, and the counts."""

    agency: str
    as_of: datetime
    executed: bool
    periods: dict[Kind, Period]
    counts: list[Count] = field(default_factory=list)
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The `--json` form, and what `hub_retention_runs` keeps."""
        return {"agency": self.agency, "as_of": self.as_of.isoformat(),
                "executed": self.executed, "run_id": self.run_id,
                "policy": {k: asdict(p) for k, p in self.periods.items()},
                "counts": [asdict(c) for c in self.counts]}


def _changed(status: str) -> int:
    """The row count of a DELETE or UPDATE command tag."""
    return int(status.rsplit(" ", 1)[-1])


async def apply(
    settings: Settings, agencies: list[str] | None = None, *, as_of: datetime | None = None,
    execute: bool = False, purpose: str | None = None, by: str | None = None,
) -> list[AgencyRun]:
    """Run the policy in each named agency's database (every agency when none), as of
    `as_of` (now when None); see the module docstring."""
    registry = installed()
    names = agencies or list(registry.names())
    unknown = [n for n in names if n not in registry.names()]
    if unknown:
        raise BadTarget(f"no agency {', '.join(unknown)}; nothing was changed")
    when = as_of or datetime.now(UTC)
    who = by or getpass.getuser()
    runs = []
    for name in names:
        agency = registry.get(name)
        run = AgencyRun(name, when, execute, periods(settings, name))
        conn = await asyncpg.connect(settings.dsn(name, role="owner"))
        try:
            async with conn.transaction():
                await _one(conn, agency, settings, run)
                await _record(conn, run, who, purpose)
        finally:
            await conn.close()
        runs.append(run)
    return runs


async def _one(conn: Connection, agency: Agency, settings: Settings, run: AgencyRun) -> None:
    await conn.execute(LOCK)
    run.run_id = await conn.fetchval(
        "SELECT nextval(pg_get_serial_sequence('hub_retention_runs', 'id'))")
    if agency.consumes:
        await conn.execute("SELECT 1 FROM hub_consumer_offsets WHERE group_id = $1"
                           " ORDER BY topic, partition FOR UPDATE", agency.group_id(settings))
    await _replaced_tables(conn, agency, run)
    rows = conn.transaction()
    await rows.start()
    try:
        if agency.retention is not None:
            await _expiring(conn, agency.retention, run)
            await _ended_permits(conn, agency, agency.retention, run)
    except BaseException:
        await rows.rollback()
        raise
    if run.executed:
        await rows.commit()
    else:
        await rows.rollback()
    await _evidence_values(conn, run)


async def _replaced_tables(conn: Connection, agency: Agency, run: AgencyRun) -> None:
    """Step 2: the view tables replays replaced, by the time their replay switched."""
    if agency.view is None:
        return
    period = run.periods["replaced_tables"]
    prefix = f"{agency.view.table.name}__replaced_"
    found = await conn.fetch(
        "SELECT t.tablename, r.id, r.finished_at FROM pg_tables t"
        " JOIN hub_replays r ON t.tablename = $1 || r.id::text"
        " WHERE t.schemaname = current_schema() AND r.status = 'switched'"
        " ORDER BY r.id", prefix)
    for t in found:
        if t["finished_at"] is None or not period.due(t["finished_at"], run.as_of):
            continue
        rows = await conn.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"')
        if run.executed:
            await conn.execute(f'DROP TABLE "{t["tablename"]}"')
        run.counts.append(Count(t["tablename"], "drop", "replaced_tables", rows,
                                f"replay {t['id']} switched {t['finished_at']:%Y-%m-%d}"))


async def _expiring(conn: Connection, retention: Retention, run: AgencyRun) -> None:
    """Step 3: rows whose time passed more than the period ago."""
    cutoff = run.periods["qr_tokens"].cutoff(run.as_of)
    for e in retention.expiring:
        done = await conn.execute(f"DELETE FROM {e.table} WHERE {e.column} < $1", cutoff)
        run.counts.append(Count(e.table, "delete", "qr_tokens", _changed(done),
                                f"{e.column} before {cutoff:%Y-%m-%d %H:%M}"))


async def _ended_permits(
    conn: Connection, agency: Agency, retention: Retention, run: AgencyRun,
) -> None:
    """Step 4: the view's permits that ended more than the period ago, and what goes with
    them; each leaves a tombstone with its sequence."""
    assert agency.view is not None
    table = agency.view.table
    period = run.periods["ended_permits"]
    rows = await conn.fetch(
        f"SELECT {table.key}::text AS subject, sequence, status, valid_until,"
        f" ({retention.cancelled_on})::date AS cancelled_on FROM {table.name}"
        f" WHERE status = ANY($1)", list(ENDED_STATUSES))
    due = [(r["subject"], r["sequence"], end) for r in rows
           if (end := ended_due(period, r["status"], r["valid_until"], r["cancelled_on"],
                                run.as_of)) is not None]
    subjects = [d[0] for d in due]
    for f in retention.forget:
        if f.columns:
            sets = ", ".join(f"{c} = NULL" for c in f.columns)
            some = " OR ".join(f"{c} IS NOT NULL" for c in f.columns)
            done = await conn.execute(
                f"UPDATE {f.table} SET {sets} WHERE ({f.match}) AND ({some})", subjects)
        else:
            done = await conn.execute(f"DELETE FROM {f.table} WHERE {f.match}", subjects)
        run.counts.append(Count(f.table, f.action, "ended_permits", _changed(done),
                                ", ".join(f.columns)))
    done = await conn.execute(f"DELETE FROM {table.name} WHERE {table.key}::text = ANY($1)",
                              subjects)
    await conn.executemany(
        "INSERT INTO hub_erasures (subject, sequence, ended_on, run_id)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (subject) DO UPDATE SET"
        " sequence = EXCLUDED.sequence, ended_on = EXCLUDED.ended_on,"
        " erased_at = clock_timestamp(), run_id = EXCLUDED.run_id",
        [(s, seq, end, run.run_id) for s, seq, end in due])
    run.counts.append(Count(table.name, "delete", "ended_permits", _changed(done),
                            f"ended before {period.cutoff(run.as_of):%Y-%m-%d};"
                            " tombstones in hub_erasures"))


async def _evidence_values(conn: Connection, run: AgencyRun) -> None:
    """Step 5: the evidence log's values recorded more than the period ago."""
    cutoff = run.periods["evidence_values"].cutoff(run.as_of)
    where = "recorded_at < $1 AND value IS NOT NULL"
    if run.executed:
        rows = _changed(await conn.execute(
            "UPDATE hub_evidence SET value = NULL, value_erased_at = clock_timestamp()"
            f" WHERE {where}", cutoff))
    else:
        rows = await conn.fetchval(f"SELECT count(*) FROM hub_evidence WHERE {where}", cutoff)
    run.counts.append(Count("hub_evidence", "erase values", "evidence_values", rows,
                            f"recorded before {cutoff:%Y-%m-%d %H:%M}"))


async def _record(conn: Connection, run: AgencyRun, who: str, purpose: str | None) -> None:
    """Step 6: the run's row, in the run's transaction."""
    out = run.as_dict()
    await conn.execute(
        "INSERT INTO hub_retention_runs (id, as_of, run_by, purpose, executed, policy, counts)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
        run.run_id, run.as_of, who, purpose, run.executed, json.dumps(out["policy"]),
        json.dumps(out["counts"]))
