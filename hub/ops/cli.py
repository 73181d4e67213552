"""The ops commands' command line: `lag`, `reconcile` and the `dlq` group, mounted by `hub.cli`.

Exit codes as every command (`hub.commands`): 0 fine, 1 the check found something (drift, a
failed redrive), 2 the operator named something that does not exist (nothing was changed).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hub.commands import Operator, Purpose, Reveal, emit_json, run
from hub.registry import installed
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.ops.views import Drift

AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def _consumer_names() -> list[str]:
    return [a.name for a in installed().consumers()]


def _view_names() -> list[str]:
    return [a.name for a in installed().with_views()]


Groups = Annotated[
    list[str] | None,
    typer.Argument(help="agency names or consumer group ids; every agency when omitted",
                   autocompletion=_consumer_names),
]


def lag(groups: Groups = None, as_json: AsJson = False) -> None:
    """Per group and partition: stored and Kafka-committed offsets, log end, lag, oldest age."""
    from hub.ops.lag import lag_report

    rows = run(lambda s: lag_report(s, groups))
    now = datetime.now(UTC)
    if as_json:
        emit_json([r.as_dict(now) for r in rows])
        return
    header = f"{'GROUP':<28} {'TOPIC':<40} {'P':>3} {'STORED':>8} {'KAFKA':>8} {'END':>8}"
    typer.echo(f"{header} {'LAG':>7} OLDEST-UNPROCESSED")
    for r in rows:
        age = r.age_seconds(now)
        typer.echo(
            f"{r.group:<28} {r.topic:<40} {r.partition:>3} {_dash(r.stored):>8} "
            f"{_dash(r.kafka_committed):>8} {r.log_end:>8} {r.lag:>7} "
            f"{'-' if age is None else f'{age:.1f}s ago'}"
        )


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def reconcile(
    agencies: Annotated[
        list[str] | None, typer.Argument(help="agency views to check; all when omitted",
                                         autocompletion=_view_names)
    ] = None,
    *,
    purpose: Purpose,
    reveal: Reveal = False,
    operator: Operator = None,
    as_json: AsJson = False,
) -> None:
    """Compare each agency view with the authority's records; exit 1 if any drift is found.
    A drift's personal values are masked unless --reveal; each permit shown is recorded as
    a look first."""
    from hub.looks import Look
    from hub.ops.reconcile import drift_dict, reconcile_shown

    async def work(s: Settings) -> list[Drift]:
        return await reconcile_shown(s, agencies, Look("reconcile", purpose, reveal, operator))

    found = run(work)
    if as_json:
        emit_json([drift_dict(d) for d in found])
    else:
        for d in found:
            typer.echo(str(d))
        typer.echo(f"{len(found)} drift(s)" if found else "no drift: every view agrees", err=True)
    raise typer.Exit(1 if found else 0)


dlq_app = typer.Typer(
    help="A consumer group's dead letters: list them, show one, redrive them after a fix.",
    no_args_is_help=True,
)
Group = Annotated[str, typer.Argument(help="agency name or consumer group id",
                                      autocompletion=_consumer_names)]
Quarantine = Annotated[
    bool, typer.Option("--quarantine", help="the group's quarantine topic instead of its DLQ")
]


Limit = Annotated[int | None, typer.Option(min=1, help="at most this many dead letters")]
Since = Annotated[
    datetime | None,
    typer.Option(help="only those dead-lettered at or after this time (UTC unless it says)"),
]


@dlq_app.command("list")
def dlq_list(
    group: Group, quarantine: Quarantine = False, limit: Limit = None, since: Since = None,
    as_json: AsJson = False,
) -> None:
    """A group's dead letters with their reasons and origins, then the counts per reason.

    Printed as they are read from the topic, so a DLQ of any size lists in constant memory.
    """
    from hub.ops.dlq import dlq_topic_of, scan
    from hub.ops.redrive import redrive_log

    async def work(s: Settings) -> None:
        _, topic = dlq_topic_of(s, group, quarantine=quarantine)
        sent = {f"{r['dlq_partition']}:{r['dlq_offset']}" for r in await redrive_log(s, group)
                if r["result"] == "sent" and r["dlq_topic"] == topic}
        out = _JsonListing(topic) if as_json else _TextListing(topic)
        async for m in scan(s, topic, since=_utc(since), limit=limit):
            out.row({**m.summary(), "redriven": m.ref in sent})
        out.close()

    run(work)


def _utc(when: datetime | None) -> datetime | None:
    return when if when is None or when.tzinfo else when.replace(tzinfo=UTC)


class _TextListing:
    """`dlq list` for a terminal: a line pair per dead letter, then the counts."""

    def __init__(self, topic: str) -> None:
        self.topic, self.reasons = topic, Counter[str]()

    def row(self, r: dict[str, Any]) -> None:
        self.reasons[r["reason"] or "(none)"] += 1
        mark = " (redriven)" if r["redriven"] else ""
        mark += " (truncated)" if r["truncated"] else ""
        typer.echo(f"{r['ref']:>10}  {r['reason'] or '-':<18} {r['origin'] or '-':<50} "
                   f"{r['event_type'] or '-'}  redrives={r['redrive_count']}{mark}\n"
                   f"{'':>12}{r['error_class']}: {(r['error_message'] or '')[:120]}")

    def close(self) -> None:
        typer.echo(f"{self.topic}: {self.reasons.total()} dead letter(s)")
        for reason, count in self.reasons.most_common():
            typer.echo(f"  {count:>6}  {reason}")


class _JsonListing(_TextListing):
    """`dlq list --json`: one JSON document, its messages written as they are read."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        typer.echo(f'{{"topic": {json.dumps(topic)},\n "messages": [', nl=False)

    def row(self, r: dict[str, Any]) -> None:
        sep = ",\n  " if self.reasons else "\n  "
        self.reasons[r["reason"] or "(none)"] += 1
        typer.echo(sep + json.dumps(r, sort_keys=True, ensure_ascii=False), nl=False)

    def close(self) -> None:
        typer.echo(f'],\n "total": {self.reasons.total()},\n'
                   f' "by_reason": {json.dumps(dict(self.reasons.most_common()))}}}')


@dlq_app.command("show")
def dlq_show(
    group: Group,
    ref: Annotated[str, typer.Argument(help="partition:offset in the DLQ topic, e.g. 0:42")],
    *,
    purpose: Purpose,
    reveal: Reveal = False,
    operator: Operator = None,
    quarantine: Quarantine = False,
    as_json: AsJson = False,
) -> None:
    """One dead letter with all its headers, its key and its value, personal values masked
    unless --reveal; the look is recorded in the group's agency's database first."""
    from hub.looks import Look
    from hub.ops.dlq import dlq_topic_of, printable, read_one
    from hub.ops.looks import record_in

    async def work(s: Settings) -> dict[str, Any]:
        look = Look("dlq show", purpose, reveal, operator)
        agency, topic = dlq_topic_of(s, group, quarantine=quarantine)
        message = await read_one(s, topic, ref)
        await record_in(s, look, {agency.name: [message.seen()]})
        return message.detail(reveal=reveal)

    detail = run(work)
    if as_json:
        emit_json(detail)
        return
    for key in ("topic", "ref", "reason", "origin", "event_type", "redrive_count", "timestamp",
                "key", "error_class", "error_message"):
        typer.echo(f"{key:<14} {detail[key]}")
    typer.echo("headers:")
    for name, value in detail["headers"]:
        typer.echo(f"  {name}: {value}")
    typer.echo("value:")
    # The parsed value's strings may hold control characters json.dumps leaves raw.
    typer.echo(printable(json.dumps(detail["value"], indent=2, ensure_ascii=False)))


@dlq_app.command("redrive")
def dlq_redrive(
    group: Group,
    refs: Annotated[
        list[str] | None, typer.Argument(help="partition:offset of each dead letter to redrive")
    ] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="every dead letter")] = False,
    reason: Annotated[
        str | None, typer.Option(help="only dead letters with this dlq.reason")
    ] = None,
    again: Annotated[bool, typer.Option(help="also those already redriven once")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be sent; send and record nothing")
    ] = False,
    quarantine: Quarantine = False,
    limit: Limit = None,
    since: Since = None,
    as_json: AsJson = False,
) -> None:
    """Send dead letters back to their origin topic with the redrive count +1; record each.

    With --all they are read from the topic as they are sent (--since and --limit page it);
    a truncated dead letter is never sent back (the evidence log holds it whole)."""
    from hub.ops.redrive import Redrive, redrive

    if bool(refs) == redrive_all:
        typer.echo("error: name dead letters as partition:offset, or give --all", err=True)
        raise typer.Exit(2)

    async def work(s: Settings) -> list[Redrive]:
        progress = None if as_json or not sys.stderr.isatty() else _progress
        return await redrive(s, group, refs or None, reason=reason, again=again,
                             dry_run=dry_run, quarantine=quarantine, since=_utc(since),
                             limit=limit, on_progress=progress)

    done = run(work)
    if done and not as_json and sys.stderr.isatty():
        typer.echo(err=True)  # ends the progress line
    if as_json:
        emit_json([asdict(r) for r in done])
    else:
        for r in done:
            to = f" -> offset {r.target_offset}" if r.target_offset is not None else ""
            typer.echo(f"{r.result:<8} {r.ref:>10} {r.reason or '-':<18} -> {r.origin}{to}"
                       f" (redrive {r.redrive_count}){' ' + r.error if r.error else ''}")
        typer.echo(f"{len(done)} dead letter(s){' (dry run)' if dry_run else ''}", err=True)
    raise typer.Exit(1 if any(r.result == "failed" for r in done) else 0)


def _progress(done: int) -> None:
    """A one-line progress counter on the terminal."""
    typer.echo(f"\rredriving {done}", nl=False, err=True)
