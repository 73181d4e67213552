"""`hub outbox`: the rows an agency's relay parked because Kafka refused them (hub/outbox.py).

`hub outbox parked` lists them, with the later rows of the same subject held in the outbox
behind each; once the cause is fixed (a producer or broker limit raised, a right granted),
`hub outbox retry ID...|--all` puts them back under their own ids, so each is sent before the
rows held behind it. Exit codes as every command (`hub.commands`): 2 when a named agency or
row does not exist (nothing was changed).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from hub.commands import emit_json, run
from hub.db import open_pool
from hub.errors import BadTarget
from hub.outbox import ParkedRow, parked, unpark
from hub.registry import installed
from hub.settings import Settings

outbox_app = typer.Typer(help="Outbox rows Kafka refused: list, retry.", no_args_is_help=True)


def _publisher_names() -> list[str]:
    return [a.name for a in installed() if a.publishes is not None]


async def parked_by_agency(
    settings: Settings, agencies: list[str] | None
) -> dict[str, list[ParkedRow]]:
    """The parked rows of each publishing agency named (all when None)."""
    names = agencies or _publisher_names()
    found: dict[str, list[ParkedRow]] = {}
    for name in names:
        installed().get(name)  # BadTarget for an unknown name
        async with open_pool(settings.dsn(name), max_size=1) as pool, pool.acquire() as conn:
            found[name] = await parked(conn)
    return found


async def retry_parked(settings: Settings, agency: str, ids: list[int] | None) -> list[int]:
    """Put an agency's parked rows back into its outbox; BadTarget naming ids not parked."""
    installed().get(agency)
    async with open_pool(settings.dsn(agency), max_size=1) as pool, pool.acquire() as conn:
        if ids is not None:
            missing = sorted(set(ids) - {row.id for row in await parked(conn)})
            if missing:
                raise BadTarget(f"{agency} has no parked outbox row {missing}"
                                " (`hub outbox parked`)")
        return await unpark(conn, ids)


def _row_dict(agency: str, row: ParkedRow) -> dict[str, Any]:
    # The key is a subject (a permit number), shown escaped: it is bytes from the database.
    key = None if row.key is None else row.key.decode("utf-8", "backslashreplace")
    return {"agency": agency, **asdict(row), "key": key}


@outbox_app.command("parked")
def parked_command(
    agencies: Annotated[list[str] | None, typer.Argument(
        help="publishing agencies; all when omitted", autocompletion=_publisher_names)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The outbox rows each relay parked (Kafka refused them), with the error and how many
    later rows of the same subject wait behind each."""
    found = run(lambda s: parked_by_agency(s, agencies))
    rows = [_row_dict(agency, row) for agency, parked_rows in found.items()
            for row in parked_rows]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['agency']:<20} {r['id']:>8} {r['topic']:<40} {r['size']:>9,}B"
                   f" held={r['held']:<4} {r['parked_at']:%Y-%m-%d %H:%M:%S}"
                   f" {r['error_class']}: {r['error'][:200]}")
    typer.echo(f"{len(rows)} parked row(s)" if rows else "no parked rows", err=True)


@outbox_app.command("retry")
def retry_command(
    ids: Annotated[list[int] | None, typer.Argument(help="parked row ids (`hub outbox parked`)")]
    = None,
    every: Annotated[bool, typer.Option("--all", help="every parked row of the agency")] = False,
    agency: Annotated[str | None, typer.Option(
        help="the agency whose outbox; the permit authority when omitted",
        autocompletion=_publisher_names)] = None,
) -> None:
    """Put parked rows back into the outbox, under their own ids (before the rows of their
    subject held behind them); the relay sends them, or parks them again if the cause
    remains."""
    if bool(ids) == every:
        raise typer.BadParameter("name parked row ids or --all, not both")
    name = agency or installed().authority().name
    moved = run(lambda s: retry_parked(s, name, None if every else ids))
    typer.echo(f"{len(moved)} row(s) back in {name}'s outbox: {moved}")
