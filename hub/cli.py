"""`hub`: the operators' entry point (stack, topics, services, views, demo)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Annotated, Any

import typer

from hub import commands, tracing
from hub.clock import SystemClock
from hub.logging import get_logger
from hub.metrics import MetricsServer
from hub.ops.cli import dlq_app, lag, reconcile
from hub.ops.console import console_app
from hub.ops.evidence import evidence_app
from hub.ops.keys import keys_app
from hub.ops.looks import audit
from hub.ops.outbox import outbox_app
from hub.ops.replay import replay
from hub.ops.retention_cli import retention_app
from hub.registry import installed
from hub.settings import Settings
from hub.stack.cli import stack_app
from schemas.cli import schemas_app

log = get_logger(__name__)

app = typer.Typer(
    help="Permit Hub: the work-permit lifecycle between agencies, over Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_app, name="stack", help="Start, stop and inspect the local Kafka and Postgres.")
topics_app = typer.Typer(help="The hub's Kafka topics.", no_args_is_help=True)
views_app = typer.Typer(help="What each agency holds.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(views_app, name="views")
app.add_typer(dlq_app, name="dlq", help="Dead letters per consumer group: list, show, redrive.")
app.add_typer(schemas_app, name="schemas", help="The contract: compatibility of event schemas.")
app.add_typer(keys_app, name="keys", help="Event-signing keys: list, rotate, revoke.")
app.add_typer(outbox_app, name="outbox",
              help="Outbox rows Kafka refused, parked by the relay: list, retry.")
app.add_typer(evidence_app, name="evidence",
              help="Evidence logs: verify chains, show or export who said what about a permit.")
app.add_typer(retention_app, name="retention",
              help="Retention: the policy per table and topic; purge what is due.")
app.add_typer(console_app, name="console")
app.command("lag")(lag)
app.command("reconcile")(reconcile)
app.command("replay")(replay)
app.command("audit")(audit)


def _mount_agency_commands() -> None:
    """Each agency's own operator commands, under the names it declares."""
    from hub.bootstrap import command_context

    context = command_context()
    for agency in installed():
        for name, sub in agency.commands(context) if agency.commands else ():
            app.add_typer(sub, name=name)


def _agency_names() -> list[str]:
    return list(installed().names())


@app.command()
def init() -> None:
    """As Kafka's set-up principal: create the Kafka users, topics and ACLs; create each
    agency's database and its two Postgres roles (owner, runtime), apply its schema
    migrations as the owner; publish a signing key for every signer (idempotent)."""
    from hub.bootstrap import init_all

    commands.run(init_all, service=True)


@topics_app.command("create")
def topics_create() -> None:
    """Create the topics that do not exist yet, with the configured partitions and replication,
    and bring every topic's retention policy to its settings (as `hub init` does)."""
    from hub.kafka import ensure_topics
    from hub.kafka_credentials import ADMIN

    async def go(settings: Settings) -> dict[str, list[str]]:
        return await ensure_topics(settings, installed().topic_policies(settings), ADMIN)

    commands.emit_json(commands.run(go))


@topics_app.command("list")
def topics_list() -> None:
    """The topics this hub uses, with their names under the configured prefix."""
    for name in installed().topics(Settings()):
        typer.echo(name)


@topics_app.command("describe")
def topics_describe(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Each topic's retention policy as the broker holds it, beside the one the settings
    give it; exit 1 when a topic is missing or differs (`hub init` brings it back)."""
    from hub.ops.topics import describe

    rows = commands.run(describe)
    if as_json:
        commands.emit_json([r.as_dict() for r in rows])
    else:
        typer.echo(f"{'TOPIC':<52} {'POLICY':<13} {'CLEANUP':<8} {'RETENTION':>10} "
                   f"{'COMPACTION-LAG':>14} {'ISR':>3}  STATE")
        for r in rows:
            typer.echo(r.line())
    raise typer.Exit(1 if any(r.state != "as set" for r in rows) else 0)


@app.command("agencies")
def agencies(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The installed agencies: what each reads and publishes, its group, view and rights."""
    settings = Settings()
    rows = [{
        "name": a.name, "title": a.title, "package": a.package,
        "reads": [settings.topic(t) for t in a.reads],
        "publishes": settings.topic(a.publishes.topic) if a.publishes else None,
        "requests": settings.topic(a.requests.topic) if a.requests else None,
        "decisions": settings.topic(a.decisions.topic) if a.decisions else None,
        "accepts": [t.EVENT_TYPE for t in a.accepts],
        "view": a.view.table.name if a.view else None,
        "kafka": a.kafka_needs(settings).__dict__,
        "settings": f"HUB_{a.name.upper()}_*" if a.settings else None,
    } for a in installed()]
    if as_json:
        commands.emit_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']:<20} {r['title']}")
        for key in ("reads", "publishes", "requests", "decisions", "view", "settings"):
            value = r[key]
            if value:
                typer.echo(f"  {key:<10} {', '.join(value) if isinstance(value, list) else value}")


@app.command()
def run(
    agency: Annotated[str, typer.Argument(
        help="an installed agency (`hub agencies`)", autocompletion=_agency_names)],
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=0, max=65535,
        help="serve Prometheus metrics on this port (0: a free one; default"
             " HUB_METRICS_PORT, unset: none)")] = None,
) -> None:
    """Run one agency's processes until interrupted: its consumer group, if it consumes, its
    outbox relay and chain-head publisher, if it publishes, and its calendar on today's date
    (Beijing), if it keeps one (the authority expires ended permits) (SIGINT/SIGTERM stop it
    cleanly). It connects as the agency's runtime role and changes no schema: a database
    `hub init` has not migrated exits 1. Metrics with --metrics-port (or HUB_METRICS_PORT);
    spans exported by OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    from hub import bootstrap
    from hub.consumer import tune_gc

    async def go(settings: Settings) -> None:
        # An agency that is not installed exits 2, nothing started.
        await bootstrap.check_schema(settings, installed().get(agency))
        # As the agency's own principal, which may create no topic: `hub init` sets up Kafka.
        await bootstrap.check_agency_topics(settings, agency)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        port = settings.metrics_port if metrics_port is None else metrics_port
        with contextlib.ExitStack() as serving:
            # Spans are exported by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
            if tracing.configure(f"permit-hub-{agency}"):
                serving.callback(tracing.shutdown)
                log.info("spans exported by OTLP", agency=agency)
            if port is not None:
                server = MetricsServer(settings.metrics_address, port)
                serving.callback(server.close)
                log.info("metrics endpoint listening", agency=agency,
                         address=settings.metrics_address, port=server.port)
            tune_gc()  # as every long-running hub process (hub.consumer)
            # The agency's calendar (if it keeps one) on the real day, Beijing time.
            async with bootstrap.running_agency(settings, agency, clock=SystemClock()) as done:
                await _until(stop, *done)

    commands.run(go, service=True)


async def _until(*events: asyncio.Event) -> None:
    """Return when any of the events is set (a signal, or the component ending by itself)."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@views_app.command("show")
def views_show(
    permit_no: str,
    purpose: commands.Purpose,
    reveal: commands.Reveal = False,
    operator: commands.Operator = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """What the authority and each agency hold for one permit, personal values masked
    unless --reveal; the look is recorded in each agency's database first."""
    from hub.looks import Look
    from hub.ops.views import show

    async def work(s: Settings) -> dict[str, dict[str, Any] | None]:
        return await show(s, permit_no, Look("views show", purpose, reveal, operator))

    held = commands.run(work)
    if as_json:
        commands.emit_json(held)
    else:
        for agency, row in held.items():
            typer.echo(f"[{agency}]")
            if row is None:
                typer.echo("  (not held)")
                continue
            for k, v in row.items():
                typer.echo(f"  {k:<22} {v}")
    raise typer.Exit(0 if any(v is not None for v in held.values()) else 1)


def main() -> None:
    """Console-script entry point."""
    _mount_agency_commands()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
