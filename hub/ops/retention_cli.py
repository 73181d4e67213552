"""`hub retention policy | apply`: what the hub keeps of a person and for how long, and the
command that carries it out (`hub.ops.retention`). docs/privacy.md §5 gives each default's
reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer

from hub.commands import emit_json, run
from hub.errors import BadTarget
from hub.kafka import topic_config
from hub.looks import MIN_PURPOSE
from hub.registry import installed
from hub.retention import periods
from hub.settings import DAY_MS, Settings

retention_app = typer.Typer(
    help="Retention: the policy per table and topic; apply it (dry run unless --execute).",
    no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def _agencies() -> list[str]:
    return list(installed().names())


@dataclass(frozen=True)
class Line:
    """One line of the policy: where, what happens, after how long, set by which setting."""

    where: str
    what: str
    action: str
    period: str
    setting: str
    why: str


def policy_lines(settings: Settings) -> list[Line]:
    """The policy under these settings, per agency database and per Kafka topic."""
    out: list[Line] = []
    for agency in installed():
        p = periods(settings, agency.name)
        if agency.view is not None:
            view = agency.view.table.name
            out.append(Line(agency.name, f"{view}__replaced_<id>", "drop",
                            f"{p['replaced_tables'].days} d after the replay's switch",
                            p["replaced_tables"].setting, "a full copy of the view"))
        r = agency.retention
        if r is not None and agency.view is not None:
            ended = p["ended_permits"]
            for e in r.expiring:
                out.append(Line(agency.name, e.table, "delete",
                                f"{p['qr_tokens'].days} d after {e.column}",
                                p["qr_tokens"].setting, e.why))
            out.append(Line(agency.name, agency.view.table.name, "delete + tombstone",
                            f"{ended.days} d after a cancelled/expired permit's end",
                            ended.setting, "the agency's copy of the permit"))
            for f in r.forget:
                action = f"anonymise ({', '.join(f.columns)})" if f.columns else "delete"
                out.append(Line(agency.name, f.table, action,
                                f"with the permit ({ended.days} d after its end)",
                                ended.setting, f.why))
            out += [Line(agency.name, k.table, "kept", "-", "-", k.why) for k in r.kept]
        out.append(Line(agency.name, "hub_evidence.value", "erase values",
                        f"{p['evidence_values'].days} d after recorded_at",
                        p["evidence_values"].setting,
                        "the exact bytes; digest, chain and metadata stay"))
    for topic, kind in installed().topic_policies(settings).items():
        config = topic_config(settings, kind)
        if kind == "compacted":
            lag = int(config["min.compaction.lag.ms"]) / DAY_MS
            out.append(Line("kafka", topic, "compacted", f"newest per permit; older ones"
                            f" after {lag:g} d", "HUB_COMPACTION_LAG_MS",
                            "the newest event rebuilds every view"))
        else:
            days = int(config["retention.ms"]) / DAY_MS
            setting = ("HUB_DEAD_LETTER_RETENTION_MS" if kind == "dead-letters"
                       else "HUB_TOPIC_RETENTION_MS")
            out.append(Line("kafka", topic, "delete", f"{days:g} d", setting, kind))
    return out


@retention_app.command("policy")
def policy(as_json: AsJson = False) -> None:
    """The retention policy: per agency table and per topic, the action, the period and
    the setting that sets it (an agency's own HUB_<AGENCY>_RETENTION_* where given)."""
    lines = policy_lines(Settings())
    if as_json:
        emit_json([asdict(line) for line in lines])
        return
    typer.echo(f"{'WHERE':<17} {'WHAT':<44} {'ACTION':<30} {'PERIOD':<44} SETTING")
    for x in lines:
        typer.echo(f"{x.where:<17} {x.what:<44} {x.action:<30} {x.period:<44} {x.setting}")


@retention_app.command("apply")
def apply_command(
    agencies: Annotated[list[str] | None, typer.Argument(
        help="agencies (default: every agency)", autocompletion=_agencies)] = None,
    execute: Annotated[bool, typer.Option(
        "--execute", help="do it (default: a dry run that only counts, and is recorded)")
    ] = False,
    purpose: Annotated[str | None, typer.Option(
        "--purpose", help="why (a ticket, `scheduled`): recorded; required with --execute")
    ] = None,
    as_of: Annotated[datetime | None, typer.Option(
        "--as-of", help="count the periods to this time (UTC unless it says; default now);"
        " a later time only in a dry run")] = None,
    as_json: AsJson = False,
) -> None:
    """Per agency and table: what the policy purges or anonymises now, and how many rows
    (never a personal value). A dry run unless --execute; every run is recorded in the
    agency's hub_retention_runs. Connects as each agency's owner role.

    Exit codes: 0 done or counted; 2 an unknown agency, a future --as-of with --execute,
    or --execute without --purpose (nothing changed).
    """
    from hub.ops.retention import apply

    now = datetime.now(UTC)
    when = None if as_of is None else as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)

    async def work(s: Settings) -> list[dict[str, object]]:
        if execute and when is not None and when > now:
            raise BadTarget("--as-of lies in the future: only a dry run may look ahead;"
                            " nothing was changed")
        why = (purpose or "").strip() or None
        if execute and (why is None or len(why) < MIN_PURPOSE):
            raise BadTarget("--execute needs --purpose (a ticket, or `scheduled`);"
                            " nothing was changed")
        return [r.as_dict() for r in await apply(s, agencies, as_of=when, execute=execute,
                                                 purpose=why)]

    runs = run(work)
    if as_json:
        emit_json(runs)
        return
    head = "executed" if execute else "dry run, nothing changed (--execute to apply)"
    typer.echo(f"retention as of {runs[0]['as_of'] if runs else now.isoformat()}: {head}")
    typer.echo(f"{'AGENCY':<17} {'TABLE':<40} {'ACTION':<13} {'RULE':<16} {'ROWS':>7}  DETAIL")
    for r in runs:
        for c in r["counts"]:  # type: ignore[attr-defined]
            typer.echo(f"{r['agency']:<17} {c['table']:<40} {c['action']:<13} {c['rule']:<16}"
                       f" {c['rows']:>7}  {c['detail']}")
    typer.echo("recorded: " + ", ".join(f"{r['agency']} run {r['run_id']}" for r in runs))
