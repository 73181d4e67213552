"""`hub audit PERMIT_NO --purpose WHY`: every look at one permit's data, across every
agency's database, oldest first — the person's data tracker — and `record_in`, how the ops
commands record their looks in each agency's database before printing (`hub.looks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import asyncpg
import typer

from hub.commands import Operator, Purpose, emit_json, run
from hub.looks import Look, Seen, looks_at, record
from hub.ops.dlq import printable
from hub.registry import installed
from hub.settings import Settings

AUDIT_FIELDS = ("looks",)
"""What `hub audit` shows of an agency: its record of looks (who looked, never the data)."""


async def record_in(settings: Settings, look: Look, seen: Mapping[str, Sequence[Seen]]) -> None:
    """Record `look` in the database of each agency it saw something of, agency by agency;
    the first failure raises, and the caller then prints nothing."""
    for agency, rows in seen.items():
        if not rows:
            continue
        conn = await asyncpg.connect(settings.dsn(agency))
        try:
            await record(conn, look, rows)
        finally:
            await conn.close()


async def trail(settings: Settings, permit_no: str, look: Look) -> list[dict[str, Any]]:
    """Every agency's looks at one permit, oldest first; this look is recorded in each
    agency's database before its looks are read, so it is the last one listed."""
    out: list[dict[str, Any]] = []
    for agency in installed():
        conn = await asyncpg.connect(settings.dsn(agency.name))
        try:
            await record(conn, look, [Seen(permit_no, permit_no, AUDIT_FIELDS)])
            out += [{"agency": agency.name, **r} for r in await looks_at(conn, permit_no)]
        finally:
            await conn.close()
    return sorted(out, key=lambda r: (r["looked_at"], r["agency"]))


def audit(
    permit_no: Annotated[str, typer.Argument(help="the permit number")],
    purpose: Purpose,
    operator: Operator = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every look at a permit's data in every agency's database, oldest first: when, who,
    where, with which command, why, and whether personal values were shown."""

    async def work(s: Settings) -> list[dict[str, Any]]:
        return await trail(s, permit_no, Look("audit", purpose, False, operator))

    rows = run(work)
    if as_json:
        emit_json(rows)
        return
    typer.echo(f"{'WHEN':<27} {'WHO':<24} {'AGENCY':<17} {'COMMAND':<16} {'REVEALED':<8} PURPOSE")
    for r in rows:
        who = f"{r['operator']} ({r['looked_by']})" if r["operator"] else r["looked_by"]
        # Who and why are an operator's free text: no escape sequence may hide a line.
        typer.echo(f"{r['looked_at']:%Y-%m-%dT%H:%M:%S.%fZ} {printable(who):<24}"
                   f" {r['agency']:<17} {r['command']:<16} {'yes' if r['revealed'] else 'no':<8}"
                   f" {printable(r['purpose'])}")
